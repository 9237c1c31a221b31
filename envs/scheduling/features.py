"""The scheduling env's graph observation, column by column: one place for names, indices and bounds.

The compiled kernels (:mod:`kernels`) write the node and edge features by these indices, the env
(:mod:`env`) writes the global ones and declares the observation space from the bounds, and
policies that read single features (:class:`astrogym.agents.scheduling.greedy.GreedyScheduler`)
use the same constants, so a column can only move here.

Node features, per target (``nodes``, (max_targets, ``N_NODE_FEATURES``) float32), index (name): meaning

* ``NF_ALT`` (``alt_now/90``): altitude now / 90 deg;
* ``NF_AIRMASS`` (``airmass_now``): airmass now (capped at 5; 5 below the horizon);
* ``NF_ALT_1H``, ``NF_AIRMASS_1H`` (``alt_1h/90``, ``airmass_1h``): the same in one hour (-1 and 5 after dawn);
* ``NF_HOURS_VISIBLE`` (``hours_visible_left``): hours of visibility left tonight;
* ``NF_PRIORITY`` (``priority``): the catalogue priority;
* ``NF_VISITS_LEFT`` (``visits_left_fraction``): fraction of the requested visits still to do;
* ``NF_SNR_LEFT`` (``snr_left_fraction``): fraction of the current visit's SNR^2 still needed;
* ``NF_MAG`` (``(mag-20)/5``): magnitude, clipped to [-5, 2];
* ``NF_MOON_SEP`` (``moon_sep/180``): Moon separation / 180 deg;
* ``NF_OBSERVED`` (``observed_tonight``): 1 once observed tonight;
* ``NF_OVERHEAD`` (``overhead_from_current/300s``): slew or filter change from the current pointing;
* ``NF_EXPOSURE`` (``exposure/300s``): exposure length;
* ``NF_PROGRESS`` (``expected_progress_now``): visit progress one exposure started now would add
  (0 where not allowed);
* ``NF_VALID`` (``valid_now``): 1 where the action mask allows the target;
* ``NF_FILTER_CHANGE`` (``needs_filter_change``): 1 where the target needs another filter.

Edge features ``EF_*`` and global features ``GF_*`` follow the same pattern (``EDGE_FEATURES``,
``GLOBAL_FEATURES``; ``GF_CLOUD`` and ``GF_FILTER`` start one-hot blocks).
Overheads and exposures are in units of :data:`OVERHEAD_SCALE_S` (5 min).
"""

from __future__ import annotations

import numpy as np

from astrogym.envs.scheduling.telescope import FILTERS

# -- nodes -------------------------------------------------------------------------------------------------
NODE_FEATURES = ("alt_now/90", "airmass_now", "alt_1h/90", "airmass_1h", "hours_visible_left", "priority",
                 "visits_left_fraction", "snr_left_fraction", "(mag-20)/5", "moon_sep/180", "observed_tonight",
                 "overhead_from_current/300s", "exposure/300s", "expected_progress_now", "valid_now",
                 "needs_filter_change")
(NF_ALT, NF_AIRMASS, NF_ALT_1H, NF_AIRMASS_1H, NF_HOURS_VISIBLE, NF_PRIORITY, NF_VISITS_LEFT, NF_SNR_LEFT, NF_MAG,
 NF_MOON_SEP, NF_OBSERVED, NF_OVERHEAD, NF_EXPOSURE, NF_PROGRESS, NF_VALID, NF_FILTER_CHANGE) = range(16)
N_NODE_FEATURES = len(NODE_FEATURES)
OVERHEAD_SCALE_S = 300.0  # overheads and exposures in the observation are in units of 5 min
MAX_AIRMASS_FEATURE = 5.0
# Bounds of each feature (the observation space): angles/90 in [-1, 1], airmass in [1, 5] (0 in padding
# rows, which are all zeros), overheads and exposures in units of 5 min, flags and fractions in [0, 1].
NODE_LOW = np.array([-1, 0, -1, 0, 0, 0, 0, 0, -5, 0, 0, 0, 0, 0, 0, 0], np.float32)
NODE_HIGH = np.array([1, 5, 1, 5, 24, 100, 1, 1, 2, 1, 1, 100, 12, 1, 1, 1], np.float32)

# -- edges -------------------------------------------------------------------------------------------------
EDGE_FEATURES = ("overhead_src_to_dst/300s", "separation/180")
EF_OVERHEAD, EF_SEPARATION = range(2)
N_EDGE_FEATURES = len(EDGE_FEATURES)
EDGE_LOW, EDGE_HIGH = np.array([0, 0], np.float32), np.array([100, 1], np.float32)

# -- globals -----------------------------------------------------------------------------------------------
GLOBAL_FEATURES = ("night_fraction_elapsed", "hours_left/12", "night_index/n_nights", "seeing/2arcsec",
                   "clear", "thin", "thick", *[f"filter_{f}" for f in FILTERS], "moon_alt/90", "moon_illumination",
                   "sun_alt/90")
# GF_CLOUD and GF_FILTER start one-hot blocks (3 cloud states, one entry per filter)
GF_NIGHT_ELAPSED, GF_HOURS_LEFT, GF_NIGHT_INDEX, GF_SEEING, GF_CLOUD = range(5)
GF_FILTER = GLOBAL_FEATURES.index(f"filter_{FILTERS[0]}")
GF_MOON_ALT, GF_MOON_ILLUMINATION, GF_SUN_ALT = (GLOBAL_FEATURES.index(name) for name in
                                                 ("moon_alt/90", "moon_illumination", "sun_alt/90"))
N_GLOBAL_FEATURES = len(GLOBAL_FEATURES)
GLOBAL_LOW = np.array([0, 0, 0, 0] + [0] * 9 + [-1, 0, -1], np.float32)
GLOBAL_HIGH = np.array([1, 2, 1, 50] + [1] * 9 + [1, 1, 1], np.float32)

"""The native vector env of ``astrogym/InterferometerLock-v0``: N pitch loops in one compiled call.

``gym.make_vec("astrogym/InterferometerLock-v0", num_envs=N, vectorization_mode="vector_entry_point")``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from astrogym.envs.common.actions import as_float64_action
from astrogym.envs.common.vector import AstrogymVectorEnv
from astrogym.envs.interferometer import kernels
from astrogym.envs.interferometer.env import _KERNEL_DTYPES, InterferometerLockEnv

_INFO_KEYS = ("pitch_rad", "control_nm", "score_pitch", "score_band", "score_high")


class InterferometerLockVectorEnv(AstrogymVectorEnv):
    """N copies of :class:`~astrogym.envs.interferometer.env.InterferometerLockEnv` stepped together.

    ## Description
    Every copy's plant and seismic state, RNG words, reward filters and observation window live in
    arrays with a leading copy axis, and :func:`~astrogym.envs.interferometer.kernels.lock_step_batch`
    steps them side by side (``prange`` over copies) with the single env's own ``lock_step``, so per
    copy the numbers are bit-identical to a single env with the same seed. Each copy keeps its own
    episode draw (arm power, seismic scale, unstable pole) and, after a reset, the single env it was
    reset by reads the same arrays (its accessors and ``render`` see the live state).

    ## Spaces
    ``observation_space``: ``Box((N, 2, history_length), float32)``; ``action_space``:
    ``Box(-1, 1, (N, 1), float32)``; the single env's spaces are ``single_observation_space`` and
    ``single_action_space``.

    ## Autoreset
    Gymnasium's ``NEXT_STEP`` by default; ``autoreset_mode="SameStep"`` and ``"Disabled"`` as in
    :class:`~astrogym.envs.common.vector.AstrogymVectorEnv`.

    ## Arguments
    ``InterferometerLockVectorEnv(num_envs, autoreset_mode=..., copy=True, render_mode=None, **config)``:
    config fields as for the single env, the same for every copy. ``reset(seed=, options=)``: the
    single env's options, applied to every reset copy, plus ``reset_mask``.

    ``step`` returns ``info`` with the single env's keys (``pitch_rad``, ``control_nm``,
    ``score_pitch``, ``score_band``, ``score_high``) as arrays over copies. A batch with a non-finite or
    out-of-range action (unless ``action_out_of_range="clip"``) raises ``ValueError`` naming the copy,
    before any copy moves.
    """

    env_class = InterferometerLockEnv
    PARALLEL_FROM = 256  # a copy's step is ~0.5 us: threads pay from a few hundred copies on
    metadata = {**AstrogymVectorEnv.metadata, "render_fps": 30}

    def __init__(self, num_envs: int = 1, **kwargs: Any):
        super().__init__(num_envs, **kwargs)
        first = self.envs[0]
        n, cfg = self.num_envs, first.config
        first.reset(seed=0)  # the state arrays' shapes, from a throw-away episode (every copy is reset later)
        a = first.kernel_arguments()
        self._x = np.zeros((n, *a.x.shape))
        # the distinct discrete loops (one per arm power and unstable pole), stacked; copy i runs _loop[i]
        self._ad = np.zeros((0, *a.ad.shape))
        self._bd = np.zeros((0, *a.bd.shape))
        self._c = np.zeros((0, *a.c.shape))
        self._loop_rows: dict[int, tuple[int, Any]] = {}  # id(DiscreteLoop) -> (row, the loop, kept alive)
        self._loop = np.zeros(n, np.int64)
        self._rng = np.zeros((n, 4), np.uint64)
        self._p = np.zeros((n, kernels.N_PARAMS))
        self._zi = [np.zeros((n, *z.shape)) for z in (a.zi_lp, a.zi_bp, a.zi_hp)]
        self._ema = np.zeros((n, 3))
        self._hist = np.zeros((n, *a.hist.shape), np.float32)
        self._sos = (a.sos_lp, a.sos_bp, a.sos_hp)
        self._steps = np.zeros(n, np.int64)
        self._seismic_scale = np.ones(n)
        self._max_steps = cfg.episode_steps
        self._clip = cfg.action_out_of_range == "clip"
        self._fault = first._fault
        self._out = np.zeros((n, 6))
        self._action_shape = (n, 1)
        self._kernel = kernels.lock_step_batch_parallel if self.parallel else kernels.lock_step_batch
        self._terminated = np.zeros(n, np.bool_)

    def _load_copy(self, i: int) -> None:
        env = self.envs[i]
        a = env.kernel_arguments()
        self._loop[i] = self._loop_row(env.discrete_loop)
        for batch, own in ((self._x, a.x), (self._rng, a.rng), (self._p, a.p), (self._zi[0], a.zi_lp),
                           (self._zi[1], a.zi_bp), (self._zi[2], a.zi_hp), (self._ema, a.ema), (self._hist, a.hist)):
            batch[i] = own
        # the copy's env now reads (and its next reset writes) the rows the batched kernel steps
        env._x, env._rng_state, env._p = self._x[i], self._rng[i], self._p[i]
        env._zi = [z[i] for z in self._zi]
        env._ema, env._hist = self._ema[i], self._hist[i]
        self._steps[i] = 0
        self._seismic_scale[i] = env.episode_parameters["seismic_scale"]

    def _loop_row(self, loop) -> int:
        """The table row of ``loop`` (appended if new; the table is rebuilt from the loops in use when it
        outgrows the copies, as with randomised arm power, where every episode has its own plant)."""
        known = self._loop_rows.get(id(loop))
        if known is not None:
            return known[0]
        if len(self._loop_rows) >= 2 * self.num_envs:
            used = {int(k) for k in self._loop}
            kept = [entry for entry in self._loop_rows.values() if entry[0] in used]
            remap = {old: new for new, (old, _) in enumerate(kept)}
            self._loop = np.array([remap.get(int(k), 0) for k in self._loop], np.int64)
            self._ad, self._bd, self._c = (self._ad[[old for old, _ in kept]], self._bd[[old for old, _ in kept]],
                                           self._c[[old for old, _ in kept]])
            self._loop_rows = {id(lp): (remap[old], lp) for old, lp in kept}
        row = len(self._loop_rows)
        self._ad = np.concatenate([self._ad, loop.ad[None]])
        self._bd = np.concatenate([self._bd, loop.bd[None]])
        self._c = np.concatenate([self._c, loop.c[None]])
        self._loop_rows[id(loop)] = (row, loop)
        return row

    def _apply_faults(self) -> None:
        """The single env's fault injection, for all copies at once (each at its own step count)."""
        start, end = self._fault
        on = (self._steps >= start) & (self._steps < end)
        cfg = self.envs[0].config
        if cfg.fault == "seismic_burst":
            self._p[:, kernels.P_SEISMIC_SCALE] = self._seismic_scale * np.where(on, cfg.fault_seismic_factor, 1.0)
        else:
            self._p[:, kernels.P_SENSOR_OFFSET] = np.where(on, cfg.fault_glitch_rad, 0.0)

    def _step_copies(self, actions, active):
        a = actions
        # the kernel takes native float32/float64 of shape (N, 1); anything else is converted (or refused) once
        if type(a) is not np.ndarray or a.shape != self._action_shape or a.dtype not in _KERNEL_DTYPES:
            a = as_float64_action(a, self._action_shape, "actions (one normalised torque per copy)")
        code, i = kernels.check_batch_actions(a, active, self._clip)
        if code == kernels.ERR_NOT_FINITE:
            raise ValueError(f"actions[{i}]={a[i].tolist()} must be finite; the action space is [-1, 1]")
        if code == kernels.ERR_OUT_OF_RANGE:
            raise ValueError(f"actions[{i}]={a[i].tolist()} is outside the action space [-1, 1] "
                             f"(make the env with action_out_of_range='clip' to clip instead)")
        if self._fault is not None:
            self._apply_faults()
        zi, sos, out, terminated = self._zi, self._sos, self._out, self._terminated
        self._kernel(self._x, self._ad, self._bd, self._c, self._loop, self._rng, self._p, sos[0], zi[0], sos[1], zi[1],
                     sos[2], zi[2], self._ema, self._hist, a, active, out, terminated)
        self._steps += active
        truncated = active & (self._steps >= self._max_steps)
        terminated = active & terminated
        info = {key: out[:, k + 1].copy() for k, key in enumerate(_INFO_KEYS)}
        return out[:, 0].copy(), terminated, truncated, info

    def _observations(self) -> np.ndarray:
        return self._hist

"""astropy set-up for machines without network access."""

from __future__ import annotations

import os


def configure_offline_astropy() -> None:
    """Stop astropy from downloading IERS tables: the bundled ``astropy-iers-data`` is used instead.

    Observatory computers and CI runners are often offline, where a download attempt makes every
    time conversion fail or hang. Set ``ASTROGYM_IERS_DOWNLOAD=1`` to allow downloads (fresher
    Earth-orientation data; differences are far below the 60 s grid of the night tables).
    """
    if os.environ.get("ASTROGYM_IERS_DOWNLOAD", "0") == "1":
        return
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None

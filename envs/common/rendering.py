"""Rendering helpers: matplotlib figures to RGB arrays without a display."""

from __future__ import annotations

import os
import sys

import numpy as np


def figure_to_rgb(fig) -> np.ndarray:
    """Draw a ``matplotlib.figure.Figure`` on an Agg canvas and return it as uint8 (H, W, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


# matplotlib backends that draw off screen: render_mode="human" cannot show anything with them
_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def display_available() -> bool:
    """A cheap guess (no matplotlib import) at whether this session can open windows.

    ``MPLBACKEND`` decides when set; on Linux a window needs ``DISPLAY`` or ``WAYLAND_DISPLAY``;
    elsewhere a desktop is assumed. :func:`interactive_backend` is the exact (slower) answer.
    """
    backend = os.environ.get("MPLBACKEND", "")
    if backend:
        return backend.lower() not in _NON_INTERACTIVE
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def interactive_backend() -> str | None:
    """The name of matplotlib's backend when it can open windows, else None (a headless session)."""
    import matplotlib

    backend = matplotlib.get_backend()
    return None if backend.lower() in _NON_INTERACTIVE else backend


class FrameViewer:
    """``render_mode="human"``: shows RGB frames in one matplotlib window, at most ``fps`` per second.

    matplotlib is already a dependency (the ``rgb_array`` frames are drawn with it), so human
    rendering needs no pygame. It needs an interactive backend (``MPLBACKEND``, e.g. ``TkAgg`` or
    ``QtAgg``); :func:`interactive_backend` tells whether there is one.
    """

    def __init__(self, title: str, fps: float):
        self.title = title
        self.pause_s = 1.0 / max(float(fps), 1e-3)
        self._fig = self._image = None

    def show(self, frame: np.ndarray) -> None:
        import matplotlib.pyplot as plt

        if self._fig is None or not plt.fignum_exists(self._fig.number):
            self._fig = plt.figure(self.title)
            ax = self._fig.add_axes((0, 0, 1, 1))
            ax.set_axis_off()
            self._image = ax.imshow(frame)
        else:
            self._image.set_data(frame)
        plt.pause(self.pause_s)

    def close(self) -> None:
        if self._fig is not None:
            import matplotlib.pyplot as plt

            plt.close(self._fig)
            self._fig = self._image = None

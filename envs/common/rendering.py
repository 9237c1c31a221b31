"""Rendering helpers: matplotlib figures to RGB arrays without a display."""

from __future__ import annotations

import numpy as np


def figure_to_rgb(fig) -> np.ndarray:
    """Draw a ``matplotlib.figure.Figure`` on an Agg canvas and return it as uint8 (H, W, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])

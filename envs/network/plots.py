"""Pictures of a network episode: every telescope's timeline on the network's clock (render and saved PNGs)."""

from __future__ import annotations

import numpy as np

from astrogym.envs.scheduling.weather import THICK, THIN


def timeline_figure(env, figsize=(10.0, 4.5)):
    """One lane per telescope over the combined night (hours since the earliest evening twilight): its night
    (white) against the day (grey), cloudy spells (blue shading), exposures coloured by priority (ToOs
    orange, duplicates red), and each ToO's window from arrival to deadline (orange bars above the lanes,
    filled once served). The dashed line is the next decision."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=80)
    ax = fig.add_subplot(1, 1, 1)
    nights = env.site_nights
    k_tel = len(nights)
    hours = env.combined_length_s / 3600.0
    ax.axvspan(0.0, hours, color="0.85", zorder=0)
    for k, night in enumerate(nights):
        start = night.offset_s / 3600.0
        ax.barh(k, night.table.length_s / 3600.0, left=start, height=0.8, color="white", zorder=1)
        state = night.weather.cloud_state
        times = night.offset_s + night.table.times_s
        for level, alpha in ((THIN, 0.15), (THICK, 0.35)):
            cloudy = state == level
            if cloudy.any():
                ax.fill_between(times / 3600.0, k - 0.4, k + 0.4, where=cloudy, color="tab:blue", alpha=alpha,
                                step="mid", zorder=2, linewidth=0)
    cmap = colormaps["viridis"]
    n_cat = env.n_catalogue
    prio_max = max(float(env.catalogue.priority.max()), 1.0)
    for entry in env.log:
        k, n = entry["telescope"], entry["target"]
        if entry["outcome"] == "duplicate":
            colour = "tab:red"
        elif n >= n_cat:
            colour = "tab:orange"
        else:
            colour = cmap(float(env.catalogue.priority[n]) / prio_max)
        ax.barh(k, (entry["end_s"] - entry["start_s"]) / 3600.0, left=entry["start_s"] / 3600.0, height=0.6,
                color=colour, zorder=3, linewidth=0)
    served = env.state["too_done_s"] if env.toos else np.zeros(0)
    for j, too in enumerate(env.toos):
        y = k_tel - 0.2 + 0.25 * (j % 4)
        ax.plot([too.arrival_s / 3600.0, too.deadline_s / 3600.0], [y, y], color="tab:orange", lw=1.5,
                alpha=1.0 if served[j] >= 0 else 0.4)
        if served[j] >= 0:
            ax.plot(served[j] / 3600.0, y, marker="o", color="tab:orange", ms=4)
    if not env.needs_reset:
        ax.axvline(env.network_clock_s / 3600.0, color="k", ls="--", lw=0.8)
    ax.set_yticks(range(k_tel))
    ax.set_yticklabels([f"{n.site.name}\n{n.telescope.name}" for n in nights], fontsize=7)
    ax.set_ylim(-0.6, k_tel + 0.9)
    ax.set_xlim(0.0, hours)
    ax.set_xlabel("hours since the network's first evening twilight")
    info = env.state
    done = float(np.sum(info["visits"][:n_cat] >= env.catalogue.n_visits))
    ax.set_title(f"{k_tel} telescopes, {n_cat} targets ({done:.0f} done), ToOs served "
                 f"{int(np.sum(served >= 0))}/{len(env.toos)}", fontsize=9)
    fig.tight_layout()
    return fig

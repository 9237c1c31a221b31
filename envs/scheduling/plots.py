"""Pictures of a scheduling episode: the sky now and the night's timeline (render and saved PNGs)."""

from __future__ import annotations

import numpy as np


def schedule_figure(env, figsize=(9.0, 4.0)):
    """Left: the sky (azimuth, zenith distance) with targets coloured by state, the Moon and the pointing.
    Right: the executed exposures of the current night (altitude against time, coloured by priority) over
    the cloud state."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=80)
    state = env.state
    night = env.nights[state["night"]]
    table, now = night.table, state["time_s"]
    k = min(int(now / env.config.grid_s), table.times_s.size - 1)
    n = len(env.catalogue)
    ax = fig.add_subplot(1, 2, 1, projection="polar")
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)
    alt, az = table.alt[k], table.az[k]
    up = alt > 0
    done = state["visits"] >= env.catalogue.n_visits
    valid = env.action_masks()[:n]
    colours = np.where(done, "tab:green", np.where(valid, "tab:blue", "0.7"))
    ax.scatter(np.radians(az[up]), 90 - alt[up], s=8 + 4 * env.catalogue.priority[up], c=colours[up])
    if table.moon_alt[k] > 0:
        ax.scatter([np.radians(table.moon_az[k])], [90 - table.moon_alt[k]], s=120, c="gold", edgecolors="k")
    p = state["pointing"]
    if p >= 0:
        ax.scatter([np.radians(az[p])], [90 - alt[p]], marker="*", s=200, c="tab:red")
    ax.set_ylim(0, 90)
    ax.set_yticks([30, 60, 90])
    ax.set_yticklabels(["60", "30", "0"])
    ax.set_title("sky now (blue: valid, green: done)", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    hours = table.times_s / 3600.0
    clouds = night.weather.cloud_state
    ax2.fill_between(hours, 0, 90, where=clouds == 1, color="0.85", step="mid", label="thin cloud")
    ax2.fill_between(hours, 0, 90, where=clouds == 2, color="0.6", step="mid", label="thick cloud")
    cmap = matplotlib.colormaps["viridis"]
    pmax = float(env.catalogue.priority.max())
    for night_index, target, _t0, start, end, _snr in env.log:
        if night_index != state["night"]:
            continue
        ks = np.clip([int(start // env.config.grid_s), int(end // env.config.grid_s)], 0, table.times_s.size - 1)
        ax2.plot(np.array([start, end]) / 3600.0, table.alt[ks, target], lw=3,
                 color=cmap(env.catalogue.priority[target] / pmax))
    ax2.axvline(now / 3600.0, color="tab:red", lw=1)
    ax2.set_xlim(0, table.length_s / 3600.0)
    ax2.set_ylim(0, 90)
    ax2.set_xlabel("hours since evening twilight")
    ax2.set_ylabel("altitude of exposures (deg)")
    ax2.set_title(f"night {state['night'] + 1}: {len(env.log)} exposures", fontsize=9)
    fig.tight_layout()
    return fig

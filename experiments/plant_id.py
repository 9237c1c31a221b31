"""Plant identification for the interferometer against the truth, and the H2 controller designed on it.

::

    python -m astrogym.experiments.plant_id --out results/plant_id

For each arm power (250, 400 and 550 kW) it records ``--seconds`` of the loop-shaping baseline with a
white excitation of ``--excitation`` of the actuator range added to its torque (training seeds), then
identifies the plant and the disturbance (:mod:`astrogym.agents.interferometer.identified`) and compares
them with the env's true plant over 0.3-30 Hz: magnitude error (dB) and phase error (degrees) of the
non-parametric estimate and of the fitted grey-box model, the learned stiffness, actuator gain, seismic
level and sensing noise against the true ones, and the identified plant's poles against the true poles.
Then it synthesises the H2 controller on the 400 kW identification only and gives its theoretical
closed-loop figures on the *true* plant at 250, 400 and 550 kW next to loop shaping and to the H2
designed on the truth. The env rollouts of the same controller are ``astrogym evaluate
astrogym/InterferometerLock-v0 --policy baseline h2 h2-identified`` (held-out seeds, with CIs).
Writes ``plant_id.md``, ``plant_id.json`` and ``plant_id_bode.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

ENV_ID = "astrogym/InterferometerLock-v0"
POWERS_W = (250e3, 400e3, 550e3)


def _poles(suspension: str, stiffness: float, fs: float) -> list[tuple[float, float]]:
    """(frequency Hz, Q) of the discrete plant's poles, continuous equivalents, one per conjugate pair."""
    from astrogym.envs.interferometer.plant import build_discrete_loop

    loop = build_discrete_loop(suspension, stiffness, 0.0, fs)
    s = np.log(np.linalg.eigvals(loop.ad[:loop.n_plant, :loop.n_plant]).astype(complex)) * fs
    s = s[s.imag >= 0]
    return sorted((float(abs(x) / (2 * np.pi)), float(abs(x) / (-2 * x.real)) if x.real < 0 else float("inf"))
                  for x in s)


def run(out: Path, seconds: float = 600.0, excitation: float = 0.05, seed: int = 0) -> str:
    from astrogym.agents.checkpoints import atomic_write_bytes
    from astrogym.agents.interferometer.h2 import H2Controller, closed_loop_figures
    from astrogym.agents.interferometer.identified import BAND_HZ, identified_h2, identify, record
    from astrogym.agents.interferometer.loop_shaping import LoopShapingController
    from astrogym.envs.interferometer.plant import discrete_plant_response, mode_stiffness
    from astrogym.surrogates.system_id import response_errors

    results, bode = {}, {}
    for power in POWERS_W:
        def make_env(power=power, **kw):
            return gym.make(ENV_ID, arm_power_w=power, **kw)

        cfg = make_env().unwrapped.config.resolved()
        data = record(make_env, seed=seed, seconds=seconds, excitation=excitation)
        plant = identify(data, cfg)
        fs = cfg.sample_rate_hz
        f = plant.estimate.f_hz
        units = cfg.torque_limit_nm / cfg.obs_pitch_scale_rad
        k_true = mode_stiffness(cfg.mode, cfg.suspension, power, cfg.unstable_pole_hz)
        truth = discrete_plant_response(cfg.suspension, k_true, fs, f)
        z = np.exp(2j * np.pi * f / fs)
        estimate = plant.estimate.response / (units * z)  # rad per N m, the same convention as the truth
        fitted = plant.response(cfg, f)
        results[f"{power / 1e3:.0f} kW"] = {
            "identified": plant.summary(),
            "true": {"stiffness_nm_per_rad": k_true, "actuator_gain": 1.0, "seismic_scale": cfg.seismic_scale,
                     "sensor_noise_rad_rthz": cfg.sensor_noise_rad},
            "estimate_vs_truth": response_errors(estimate, truth), "model_vs_truth": response_errors(fitted, truth),
            "poles_identified": _poles(cfg.suspension, plant.stiffness, fs),
            "poles_true": _poles(cfg.suspension, k_true, fs),
            "segments": plant.estimate.segments, "min_coherence": float(plant.estimate.coherence.min())}
        bode[power] = (f, truth, estimate, fitted)
        if power == 400e3:
            nominal_plant, nominal_env = plant, make_env()

    controllers = {"loop shaping": LoopShapingController(nominal_env), "h2 (true plant)": H2Controller(nominal_env),
                   "h2 (identified plant)": identified_h2(nominal_env, nominal_plant)}
    cfg = nominal_env.unwrapped.config
    figures = {name: {f"{p / 1e3:.0f} kW": closed_loop_figures(c.controller, cfg, arm_power_w=p) for p in POWERS_W}
               for name, c in controllers.items()}

    lines = [f"### Plant identification ({ENV_ID}): {seconds:.0f} s of loop shaping with a {excitation:.0%} white "
             f"excitation per arm power, {BAND_HZ[0]}-{BAND_HZ[1]} Hz", "",
             "| arm power | estimate vs truth: max / RMS dB, max / RMS deg | grey-box model vs truth: max / RMS dB, "
             "max / RMS deg | stiffness identified / true [N m/rad] | actuator gain | seismic level (true 1) | "
             "sensing noise identified / true [rad/rtHz] |", "|---" * 7 + "|"]
    for label, r in results.items():
        e, m, i, t = r["estimate_vs_truth"], r["model_vs_truth"], r["identified"], r["true"]
        lines.append(f"| {label} | {e['max_abs_db']:.2f} / {e['rms_db']:.2f} dB, {e['max_abs_deg']:.1f} / "
                     f"{e['rms_deg']:.1f} deg | {m['max_abs_db']:.3f} / {m['rms_db']:.3f} dB, {m['max_abs_deg']:.2f} / "
                     f"{m['rms_deg']:.2f} deg | {i['stiffness_nm_per_rad']:.2f} / {t['stiffness_nm_per_rad']:.2f} | "
                     f"{i['actuator_gain']:.4f} | {i['seismic_scale']:.2f} | {i['sensor_noise_rad_rthz']:.3g} / "
                     f"{t['sensor_noise_rad_rthz']:.3g} |")
    lines += ["", "Poles (frequency Hz / Q), identified vs true:", ""]
    for label, r in results.items():
        pairs = ", ".join(f"{a[0]:.3f}/{a[1]:.1f} vs {b[0]:.3f}/{b[1]:.1f}"
                          for a, b in zip(r["poles_identified"], r["poles_true"]))
        lines.append(f"- {label}: {pairs}")
    lines += ["", "H2 synthesised on the 400 kW identification only, closed-loop figures on the *true* plant "
              "(stationary spectra, `closed_loop_figures`):", "",
              "| controller | arm power | stable | 10-30 Hz control RMS [N m] | pitch RMS < 3 Hz [rad] | "
              "control RMS > 40 Hz [N m] |", "|---" * 6 + "|"]
    for name, per_power in figures.items():
        for label, fig in per_power.items():
            lines.append(f"| {name} | {label} | {fig['closed_loop_stable']} | {fig['control_rms_10_30hz_nm']:.3g} | "
                         f"{fig['pitch_rms_below_3hz_rad']:.3g} | {fig['control_rms_above_40hz_nm']:.3g} |")
    text = "\n".join(lines) + "\n"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "plant_id.md", text.encode())
    atomic_write_bytes(out / "plant_id.json", json.dumps({"plants": results, "figures": figures}, indent=1,
                                                         default=float).encode())
    _plot(bode, out / "plant_id_bode.png")
    return text


def _plot(bode: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astrogym.experiments.plotting import save_png

    fig, (mag, ph) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for i, (power, (f, truth, est, fit)) in enumerate(bode.items()):
        c = f"C{i}"
        mag.loglog(f, np.abs(est), ".", ms=2, color=c, alpha=0.4)
        mag.loglog(f, np.abs(truth), "-", color=c, label=f"{power / 1e3:.0f} kW true")
        mag.loglog(f, np.abs(fit), "--", color="k", lw=0.8)
        ph.semilogx(f, np.degrees(np.unwrap(np.angle(est))), ".", ms=2, color=c, alpha=0.4)
        ph.semilogx(f, np.degrees(np.unwrap(np.angle(truth))), "-", color=c)
        ph.semilogx(f, np.degrees(np.unwrap(np.angle(fit))), "--", color="k", lw=0.8)
    mag.set_ylabel("|P| [rad / N m]")
    ph.set_ylabel("phase [deg]")
    ph.set_xlabel("frequency [Hz]")
    mag.legend(fontsize=8, title="dots: closed-loop estimate; dashed: identified model", title_fontsize=7)
    mag.set_title("Pitch plant identified from closed-loop data vs the truth", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m astrogym.experiments.plant_id", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/plant_id"))
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--excitation", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(run(args.out, args.seconds, args.excitation, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Evaluate AO controllers: long-exposure Strehl at the science wavelength beside the error budget."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import astrogym  # noqa: F401
from astrogym.agents.registry import PolicyContext, make_policy, tuned_integrator_gain
from astrogym.envs.adaptive_optics import metrics, theory
from astrogym.envs.adaptive_optics.config import PRESET_IDS

AO_IDS = tuple(PRESET_IDS.values())  # the registered AO ids (astrogym.envs.ENV_SPECS)


def evaluate_integrator(env_id: str, frames: int = 2000, seed: int = 0, gain: float | None = None,
                        out_dir: str | Path | None = None, progress: bool = True, controller: str = "integrator",
                        **config) -> dict:
    """Run a classical controller and report Strehl beside the error budget.

    ``controller="integrator"``: the leaky integrator, gain tuned on a separate seed if not given.
    ``controller="predictive"``: the linear predictive controller, fitted on telemetry of a
    separate seed (the budget's servo term is still the integrator's, for comparison).

    Returns a row with the tuned gain, long-exposure Strehl from the PSF (sampled every 10
    frames after the first 100), mean short-exposure (Marechal) Strehl, raw coronagraphic
    contrast in 3-10 lambda/D, and the analytic budget: fitting, aliasing, integrator servo
    error, and the Strehl they predict.
    """
    def make(**extra):
        return gym.make(env_id, **{**config, **extra})

    if gain is None:
        gain = tuned_integrator_gain(make, seed + 1000)
    env = make(episode_frames=frames, psf_every=10)
    cfg = env.unwrapped.config
    if controller not in ("integrator", "predictive"):
        raise ValueError(f"controller={controller!r}; allowed 'integrator' or 'predictive'")
    # the predictor is fitted on telemetry of its own seed
    policy = make_policy(controller, PolicyContext(env, make, tuning_seed=seed + 2000, options=(
        {"gain": gain} if controller == "integrator" else {})), env_id=env_id)
    obs, _ = env.reset(seed=seed)
    variances, info = [], {}
    for k in tqdm(range(frames), disable=not progress, desc=env_id.split("/")[1], unit="frame", mininterval=0.5):
        if k == 100:  # drop the loop's convergence from the long exposure
            env.unwrapped.reset_long_exposure()
        obs, _, _, truncated, info = env.step(policy.predict(obs)[0])
        if k >= 100:
            variances.append(info["residual_rad2"])
    fitting, aliasing = theory.fitting_error_rad2(cfg), theory.aliasing_error_rad2(cfg)
    servo = theory.integrator_servo_error_rad2(cfg, gain=gain)
    row = {"env": env_id, "controller": controller, "subapertures": cfg.n_subapertures, "wfs": cfg.wfs,
           "gain": gain,
           "long_exposure_strehl": info.get("long_exposure_strehl", float("nan")),
           "short_exposure_strehl": float(np.mean(np.exp(-np.asarray(variances)))),
           "residual_rad2": float(np.mean(variances)), "raw_contrast_3_10": info.get("raw_contrast", float("nan")),
           "budget_fitting_rad2": fitting, "budget_aliasing_rad2": aliasing, "budget_servo_rad2": servo,
           "budget_strehl": float(np.exp(-(fitting + aliasing + servo)))}
    result = {"row": row}
    if out_dir is not None:
        psf = env.unwrapped.long_exposure_psf()
        science = env.unwrapped.science_residual_phase_rad
        name = env_id.split("/")[1].lower() + ("" if controller == "integrator" else f"_{controller}")
        result["plot"] = metrics.plot_psf_and_phase(
            psf, science, env.unwrapped.system.pupil, env.unwrapped.psf_padding, Path(out_dir) / f"{name}_psf.png",
            title=f"{env_id}: long-exposure PSF at {cfg.science_wavelength_um} um, Strehl "
                  f"{row['long_exposure_strehl']:.3f}")
    env.close()
    return result


def ao_table(rows: list[dict]) -> str:
    head = ("| env | controller | WFS | integrator gain | long-exposure Strehl (PSF) | mean short-exposure Strehl | "
            "residual [rad^2] | raw contrast 3-10 l/D | budget fit / alias / servo [rad^2] | budget Strehl |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['env']} ({r['subapertures']}x{r['subapertures']}) | {r['controller']} | {r['wfs']} | {r['gain']:.2f} | "
        f"{r['long_exposure_strehl']:.3f} | {r['short_exposure_strehl']:.3f} | {r['residual_rad2']:.4f} | "
        f"{r['raw_contrast_3_10']:.2e} | {r['budget_fitting_rad2']:.4f} / {r['budget_aliasing_rad2']:.4f} / "
        f"{r['budget_servo_rad2']:.4f} | {r['budget_strehl']:.3f} |\n" for r in rows)

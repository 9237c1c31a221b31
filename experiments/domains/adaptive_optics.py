"""The adaptive-optics envs in the experiment layer: Strehl metrics, the TensorBoard callback, bench and report."""

from __future__ import annotations

from pathlib import Path

from astrogym.agents.registry import AO_IDS
from astrogym.experiments.registry import Domain, Metric, register_domain

# Frames dropped from an episode's mean while any controller's loop converges.
SETTLE_FRAMES = 50


class StrehlRecorder:
    """Residual phase variance per frame -> mean short-exposure (Marechal) Strehl and residual.

    Where the env computes PSFs (``psf_every > 0``) also the long-exposure Strehl and the raw
    coronagraphic contrast at 2-5 and 3-10 lambda/D, with the long exposure restarted once the
    loop has settled (after ``SETTLE_FRAMES``), so the open-loop start does not fill the halo.
    """

    def reset(self, env, info):
        self.residuals = []
        self.env = env

    def step(self, reward, info):
        self.residuals.append(info["residual_rad2"])
        if len(self.residuals) == SETTLE_FRAMES and hasattr(self.env.unwrapped, "reset_long_exposure"):
            self.env.unwrapped.reset_long_exposure()

    def finish(self, env, info, terminated):
        from astrogym.envs.adaptive_optics.metrics import episode_strehl

        out = episode_strehl(self.residuals, SETTLE_FRAMES)
        for key in ("long_exposure_strehl", "raw_contrast_2_5", "raw_contrast"):
            if key in info:
                out[key] = float(info[key])
        return out


def _callbacks(env):
    from astrogym.experiments.callbacks import AOMetricsCallback

    return [AOMetricsCallback()]


def _throughput(env_id: str, quick: bool) -> str:
    from astrogym.experiments.bench_ao import ao_bench_table, bench_adaptive_optics

    rows = bench_adaptive_optics(frames=100 if quick else 300, hcipy_frames=5 if quick else 20, repeats=3)
    return "Median of 3; HCIPy only where installed.\n\n" + ao_bench_table(rows)


def _report(env_id: str, out: Path, quick: bool, seed: int) -> str:
    """Long exposure of the tuned integrator and the predictive controller: Strehl beside the error budget, PSFs."""
    from astrogym.experiments.evaluate_ao import ao_table, evaluate_integrator

    frames = 500 if quick else 3000
    integrator = evaluate_integrator(env_id, frames=frames, seed=seed, out_dir=out)
    # the predictive row reuses the tuned gain for its budget column instead of tuning again
    predictive = evaluate_integrator(env_id, frames=frames, seed=seed, out_dir=out, gain=integrator["row"]["gain"],
                                     controller="predictive")
    plots = ", ".join(f"`{Path(r['plot']).name}`" for r in (integrator, predictive))
    return (f"Long exposure: {frames} frames, seed {seed}; integrator gain tuned and predictor fitted on other "
            f"seeds.\n\n{ao_table([integrator['row'], predictive['row']])}\nPSF plots: {plots}\n")


ADAPTIVE_OPTICS = register_domain(Domain(
    name="adaptive_optics",
    env_ids=AO_IDS,
    metrics=(Metric("strehl", "mean Strehl at 1.65 um (Marechal)", fmt=".4f"),
             Metric("residual_rad2", "residual [rad^2]", higher_is_better=False, fmt=".4f", paired=True),
             Metric("long_exposure_strehl", "long-exposure Strehl", fmt=".4f"),
             Metric("raw_contrast_2_5", "raw contrast 2-5 l/D", higher_is_better=False, fmt=".2e"),
             Metric("raw_contrast", "raw contrast 3-10 l/D", higher_is_better=False, fmt=".2e")),
    recorder=lambda env: StrehlRecorder(),
    default_algo="ppo",
    reference_policy="integrator",
    training_callbacks=_callbacks,
    throughput=_throughput,
    report=_report,
))

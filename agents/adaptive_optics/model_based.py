"""Model-based AO control in the manner of PO4AO (Nousiainen et al. 2022): a learned dynamics ensemble and a
convolutional policy trained by backpropagating the residual through it.

The loop (:class:`PO4AOTrainer`), as PO4AO's public code does it:

1. warm-up: the tuned leaky integrator with exploration noise collects real frames
   (:func:`astrogym.surrogates.transitions.collect`);
2. a :class:`~astrogym.surrogates.dynamics.EnsembleDynamics` of convolutional members learns the
   next reconstructed measurement from the observation (measurement and command history) and the
   action; the shifted history and the new command are known
   (:class:`~astrogym.surrogates.structure.AOHistory`);
3. the policy is trained on imagined rollouts of ``horizon`` steps from recorded states, each
   rollout through one randomly drawn member, minimising ``mean(measurement^2) + action_weight *
   mean(action^2)`` over the controlled actuators (the measurement is in action units, so both
   terms are too); gradients flow through the model into the policy;
4. the policy (with small exploration noise) collects the next real frames, the model is refitted
   on everything so far, and so on until ``total_frames``. A candidate whose real episode did worse
   than the best so far (by ``rollback_tolerance``) is rolled back, and the policy reported after F
   real frames is the last accepted one (after the warm-up alone: the integrator).

Departures from PO4AO, each for a reason: the policy is a bounded correction (``residual_scale``)
added to the tuned integrator, with its last layer at zero, so training starts from the stable
classical loop and a model error cannot open it; the observation carries the env's ``history``
frames (4 by default) rather than 32; the measurement noise of a faint guide star is left to the
model's mean (the rollouts use each member's mean, not samples).

The result is a :class:`ModelBasedPolicy`, saved with its integrator gain and its standardisation
(``save``/``load``, atomic, versioned) and registered as ``po4ao`` for the AO envs.
"""

from __future__ import annotations

import copy
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from astrogym.agents.adaptive_optics.integrator import LeakyIntegrator
from astrogym.agents.base import Policy
from astrogym.surrogates.files import load_state, save_state

FORMAT = "astrogym.agents.ModelBasedPolicy"
VERSION = 1


class _CorrectionNet(nn.Module):
    """PO4AO's policy body: 3x3 ``same`` convolutions with LeakyReLU, an action image out (tanh-bounded)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]):
        super().__init__()
        layers, c = [], in_channels
        for w in channels:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.LeakyReLU(0.1)]
            c = w
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # start exactly at the integrator
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        return torch.tanh(self.out(self.body(x)))[:, 0]


class ModelBasedPolicy(Policy):
    """Tuned leaky integrator plus a learned convolutional correction: ``a = clip(a_int + s tanh(f(obs)), -1, 1)``.

    Parameters
    ----------
    config: the env's :class:`AOConfig` (or the env); grid action layout.
    controlled: (N+1, N+1) bool, the actuators the action drives (``env.unwrapped.system.controlled``).
    gain, leak: the integrator's.
    residual_scale: ``s``, the largest correction per actuator (action units).
    channels: hidden conv widths.
    """

    def __init__(self, config, controlled, gain: float, leak: float = 0.99, residual_scale: float = 0.3,
                 channels: tuple[int, ...] = (32, 32)):
        self.integrator = LeakyIntegrator(config, gain=gain, leak=leak)  # checks the config, layout, gain, leak
        self.config = config = self.integrator.config
        if not 0.0 < residual_scale <= 2.0:
            raise ValueError(f"residual_scale={residual_scale!r}; allowed (0, 2]")
        self.controlled = np.asarray(controlled, dtype=bool)
        self.residual_scale = float(residual_scale)
        self.channels = tuple(int(c) for c in channels)
        self.net = _CorrectionNet(2 * config.history, self.channels)
        self._mask = torch.as_tensor(self.controlled, dtype=torch.float32)
        self._int_gain = float(gain)
        self._int_leak_term = (float(leak) - 1.0) * config.dm_stroke_rad / config.action_scale_rad
        # per-channel standardisation of the network's input (set from the warm-up data)
        self.obs_mean = torch.zeros(2 * config.history, 1, 1)
        self.obs_std = torch.ones(2 * config.history, 1, 1)
        self.metadata: dict = {}

    def set_normalisation(self, obs: np.ndarray) -> None:
        x = torch.as_tensor(obs, dtype=torch.float32)
        self.obs_mean = x.mean(dim=(0, 2, 3))[:, None, None]
        std = x.std(dim=(0, 2, 3))[:, None, None]
        self.obs_std = torch.where(std > 1e-8, std, torch.ones_like(std))

    def action_torch(self, obs: torch.Tensor) -> torch.Tensor:
        """Differentiable action of a batch ``(B, 2H, N+1, N+1)``."""
        h = self.config.history
        base = self._int_leak_term * obs[:, h] + self._int_gain * obs[:, 0]
        correction = self.residual_scale * self.net((obs - self.obs_mean) / self.obs_std)
        return torch.clamp(base + correction * self._mask, -1.0, 1.0)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 3
        if obs.ndim not in (3, 4) or obs.shape[-3] != 2 * self.config.history:
            raise ValueError(f"observation must have shape (2*history, N+1, N+1) or a batch of them, got {obs.shape}")
        with torch.no_grad():
            a = self.action_torch(torch.from_numpy(obs[None] if single else obs)).numpy()
        return (a[0] if single else a).astype(np.float32), state

    # -- files ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the policy atomically (weights, integrator, standardisation, env shape, metadata)."""
        state = {"format": FORMAT, "version": VERSION, "history": self.config.history,
                 "grid": list(self.controlled.shape),
                 "gain": self._int_gain, "leak": self.integrator.leak, "residual_scale": self.residual_scale,
                 "channels": list(self.channels), "obs_mean": self.obs_mean, "obs_std": self.obs_std,
                 "weights": self.net.state_dict(), "metadata": self.metadata}
        return save_state(path, state)

    @classmethod
    def load(cls, path: str | Path, env: gym.Env) -> "ModelBasedPolicy":
        """Read a file written by :meth:`save` for ``env``.

        Raises
        ------
        FileNotFoundError: no such file.
        ValueError: the file is corrupt, not a model-based AO policy, from a newer version, or made for
            another history length or actuator grid size than ``env``'s (the pupil may differ: the
            correction is masked to ``env``'s controlled actuators).
        """
        path = Path(path)
        state = load_state(path, FORMAT, VERSION, "model-based AO policy")
        cfg = env.unwrapped.config
        controlled = env.unwrapped.system.controlled
        try:
            if int(state["history"]) != cfg.history or tuple(state["grid"]) != controlled.shape:
                raise ValueError(f"{path}: made for history={state['history']} on a {tuple(state['grid'])} actuator "
                                 f"grid; this env has history={cfg.history} on {controlled.shape}")
            # the network is convolutional: another pupil on the same grid (another WFS model lights other
            # subapertures) only changes which actuators the correction drives, which is this env's mask
            policy = cls(env, controlled, gain=float(state["gain"]), leak=float(state["leak"]),
                         residual_scale=float(state["residual_scale"]), channels=tuple(state["channels"]))
            policy.net.load_state_dict(state["weights"])
            policy.obs_mean, policy.obs_std = state["obs_mean"], state["obs_std"]
        except (KeyError, TypeError, RuntimeError) as exc:
            raise ValueError(f"{path}: model-based policy file is incomplete ({exc})") from None
        policy.metadata = dict(state.get("metadata", {}))
        policy.net.eval()
        return policy


def load_policy_file(path, env: gym.Env) -> ModelBasedPolicy:
    """The policy registry's loader for ``.pt`` policy files (``astrogym evaluate --policy runs/x/policy_5000.pt``)."""
    return ModelBasedPolicy.load(path, env)


@dataclass(frozen=True)
class PO4AOSettings:
    """Data budget and optimisation settings of :class:`PO4AOTrainer` (PO4AO's values in the comments).

    Attributes
    ----------
    warmup_frames: real frames of the noisy integrator before the first model (PO4AO: 20 x 500).
    frames_per_round: real frames the policy collects between refits (PO4AO: 500 per episode).
    total_frames: stop after this many real frames.
    snapshots: real-frame counts at which the policy is saved (for curves at equal real frames).
    warmup_noise: sign-noise amplitude on the warm-up actions, decaying to zero (PO4AO: decaying).
    exploration_noise: Gaussian noise on the policy's actions while it collects.
    members, model_channels, model_epochs, model_batch: the ensemble (PO4AO: 5 CNNs) and its fit.
    model_rows: each round refits (continuing from the last weights) on at most this many rows drawn from
        all real data so far, so a round costs the same at 2k and at 20k frames.
    skip_frames: the first frames of each episode (the loop closing from a flat mirror, measurements
        saturated) are left out of the model's data and of the imagined rollouts' start states.
    horizon: imagined steps per rollout (PO4AO: 4).
    policy_updates, policy_batch, policy_lr: policy optimisation per round.
    action_weight: weight of mean(action^2) in the cost (PO4AO: 0.15).
    residual_scale, policy_channels: the policy (:class:`ModelBasedPolicy`).
    rollback_tolerance: a candidate policy whose real episode's mean reward falls more than this fraction
        below the best so far is rolled back (not in PO4AO; the model can be wrong where a policy drives
        the loop, and the real frames are the check).
    """

    warmup_frames: int = 2000
    frames_per_round: int = 1000
    total_frames: int = 20000
    snapshots: tuple = (2000, 5000, 10000, 20000)
    warmup_noise: float = 0.1
    exploration_noise: float = 0.02
    members: int = 5
    model_channels: tuple = (32, 32)
    model_epochs: int = 3
    model_batch: int = 64
    model_rows: int = 3000
    skip_frames: int = 50
    horizon: int = 4
    policy_updates: int = 100
    policy_batch: int = 16
    policy_lr: float = 1e-3
    action_weight: float = 0.15
    residual_scale: float = 0.3
    policy_channels: tuple = (32, 32)
    rollback_tolerance: float = 0.1

    def __post_init__(self):
        for name in ("warmup_frames", "frames_per_round", "total_frames", "members", "model_epochs", "model_batch",
                     "model_rows", "skip_frames", "horizon", "policy_updates", "policy_batch"):
            v, low = getattr(self, name), 0 if name == "skip_frames" else 1
            if isinstance(v, bool) or int(v) != v or v < low:
                raise ValueError(f"PO4AOSettings.{name}={v!r}; allowed an integer >= {low}")
        if self.warmup_frames > self.total_frames:
            raise ValueError(f"PO4AOSettings.warmup_frames={self.warmup_frames} exceeds total_frames="
                             f"{self.total_frames}")
        for name in ("warmup_noise", "exploration_noise", "action_weight", "rollback_tolerance"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"PO4AOSettings.{name}={getattr(self, name)!r}; allowed >= 0")
        if not self.policy_lr > 0.0:
            raise ValueError(f"PO4AOSettings.policy_lr={self.policy_lr!r}; allowed > 0")


@dataclass
class PO4AOTrainer:
    """Alternate real collection, ensemble fitting and policy optimisation through the ensemble.

    Parameters
    ----------
    make_env: builds the training env (the scenario's, training seeds only).
    gain: the integrator gain (tuned on a training seed), used by the warm-up and inside the policy.
    settings: :class:`PO4AOSettings`.
    seed: first training seed; round k collects episodes seeded from ``seed + 1000 k``. It also seeds
        the networks' initial weights and the rollouts' draws, so a run is reproducible.
    out: folder for the snapshots ``policy_{frames}.pt``, the final ensemble ``dynamics_final.pt`` and the
        resumable state (``state.pt``, ``data.npz``, ``dynamics.pt``, ``policy_state.pt``), written
        atomically after every round.
    resume: continue from ``out``'s state if there is one (an interrupted run loses at most a round).
    log_dir: TensorBoard scalars per round (real reward, imagined cost, model validation error).
    """

    make_env: Callable[[], gym.Env]
    gain: float
    settings: PO4AOSettings = field(default_factory=PO4AOSettings)
    seed: int = 0
    out: Path | None = None
    progress: bool = False
    resume: bool = False
    log_dir: Path | None = None
    log: list = field(default_factory=list)

    def train(self) -> ModelBasedPolicy:
        from astrogym.surrogates.dynamics import EnsembleDynamics
        from astrogym.surrogates.transitions import ExplorationNoise, Transitions, collect

        s = self.settings
        env = self.make_env()
        controlled = env.unwrapped.system.controlled
        mask = torch.as_tensor(controlled, dtype=torch.float32)
        n_mask = float(mask.sum())
        out = Path(self.out) if self.out is not None else None
        state = self._read_state(out, env) if self.resume and out is not None else None
        gen = torch.Generator().manual_seed(self.seed)
        t0 = time.perf_counter()
        if state is None:
            with torch.random.fork_rng():
                torch.manual_seed(self.seed)  # the networks' initial weights
                policy = ModelBasedPolicy(env, controlled, gain=self.gain, residual_scale=s.residual_scale,
                                          channels=s.policy_channels)
                model = EnsembleDynamics.for_env(env, member="conv", members=s.members, hidden=s.model_channels)
            warm = LeakyIntegrator(env, gain=self.gain)
            # constant sign noise (PO4AO decays it): it keeps each command's effect identifiable in closed loop
            data = collect(env, warm, s.warmup_frames, seed=self.seed, noise=ExplorationNoise("sign", s.warmup_noise))
            policy.set_normalisation(data.obs[data.step >= s.skip_frames])
            opt = torch.optim.Adam(policy.net.parameters(), lr=s.policy_lr)
            round_, snapshots = 0, sorted(set(int(f) for f in s.snapshots if f <= s.total_frames))
            accepted = copy.deepcopy(policy.net.state_dict())  # the integrator (zero correction)
            best_reward = float(data.rewards[data.step >= s.skip_frames].mean())
            frames = len(data)
            while snapshots and frames >= snapshots[0]:
                self._snapshot(policy, snapshots.pop(0))
        else:
            data, model, policy, round_, snapshots = (state[k] for k in ("data", "model", "policy", "round",
                                                                          "snapshots"))
            opt = torch.optim.Adam(policy.net.parameters(), lr=s.policy_lr)
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            self.log = list(state["log"])
            accepted, best_reward = state["accepted"], float(state["best_reward"])
            frames = len(data)
        writer = None
        if self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.log_dir))
        while True:
            settled = data.subset(data.step >= s.skip_frames)
            rows = np.random.default_rng(self.seed + round_).permutation(len(settled))[:s.model_rows]
            model.fit(settled.subset(np.sort(rows)), epochs=s.model_epochs, batch_size=s.model_batch,
                      seed=self.seed + round_, refit_normalisation=round_ == 0, validation_fraction=0.1)
            losses = self._improve(policy, model, opt, torch.from_numpy(settled.obs), gen, mask, n_mask)
            row = {"round": round_, "real_frames": frames, "model_val_mse": model.history[-1].get("val_mse"),
                   "imagined_cost": float(np.mean(losses[-10:])), "best_real_reward": best_reward}
            if frames >= s.total_frames:  # this candidate has no real frames left to be checked on
                self._log(row, writer, t0)
                break
            n = min(s.frames_per_round, s.total_frames - frames)
            noise = ExplorationNoise("gaussian", s.exploration_noise) if s.exploration_noise else None
            new = collect(env, policy, n, seed=self.seed + 1000 * (round_ + 1), noise=noise)
            data = Transitions.concatenate([data, new])
            frames += n
            round_ += 1
            reward = float(new.rewards[new.step >= s.skip_frames].mean())
            # A candidate that did worse on its real episode than the best so far is rolled back: the model
            # can be wrong where the policy takes the loop, and only real frames say so.
            rolled_back = reward < best_reward - s.rollback_tolerance * abs(best_reward)
            if rolled_back:
                policy.net.load_state_dict(accepted)
                opt = torch.optim.Adam(policy.net.parameters(), lr=s.policy_lr)
            else:
                accepted = copy.deepcopy(policy.net.state_dict())
                best_reward = max(best_reward, reward)
            row.update(real_reward=reward, rolled_back=rolled_back)
            self._log(row, writer, t0)
            while snapshots and frames >= snapshots[0]:  # the last accepted policy, after this many real frames
                self._snapshot(policy, snapshots.pop(0))
            if out is not None:
                self._write_state(out, data, model, policy, opt, gen, round_, snapshots, accepted, best_reward)
        policy.net.load_state_dict(accepted)
        while snapshots:
            self._snapshot(policy, snapshots.pop(0))
        if writer is not None:
            writer.close()
        policy.metadata.update({"settings": asdict(s), "gain": self.gain, "seed": self.seed, "real_frames": frames,
                                "log": self.log})
        if out is not None:  # not over the resumable state's dynamics.pt, which belongs to the last round's start
            model.save(out / "dynamics_final.pt")
        env.close()
        return policy

    def _log(self, row: dict, writer, t0: float) -> None:
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        self.log.append(row)
        if writer is not None:
            for key in ("model_val_mse", "imagined_cost", "real_reward", "best_real_reward"):
                if row.get(key) is not None:
                    writer.add_scalar(f"po4ao/{key}", row[key], row["real_frames"])
            writer.flush()
        if self.progress:
            print(row, flush=True)

    def _improve(self, policy, model, opt, obs_all, gen, mask, n_mask) -> list[float]:
        """``policy_updates`` steps on imagined rollouts from recorded states, one member per rollout."""
        s = self.settings
        losses = []
        for _ in range(s.policy_updates):
            obs = obs_all[torch.randint(obs_all.shape[0], (s.policy_batch,), generator=gen)]
            member = int(torch.randint(s.members, (1,), generator=gen))
            cost = 0.0
            for _t in range(s.horizon):
                action = policy.action_torch(obs)
                obs, _ = model.step(obs, action, member=member)
                cost = cost + ((obs[:, 0] ** 2) * mask).sum(dim=(1, 2)).mean() / n_mask \
                    + s.action_weight * ((action ** 2) * mask).sum(dim=(1, 2)).mean() / n_mask
            cost = cost / s.horizon
            opt.zero_grad()
            cost.backward()
            nn.utils.clip_grad_norm_(policy.net.parameters(), 1.0)
            opt.step()
            losses.append(float(cost.detach()))
        return losses

    def _snapshot(self, policy: ModelBasedPolicy, frames: int) -> None:
        if self.out is None:
            return
        policy.metadata.update({"settings": asdict(self.settings), "gain": self.gain, "seed": self.seed,
                                "real_frames": frames})
        policy.save(Path(self.out) / f"policy_{frames}.pt")

    def _write_state(self, out, data, model, policy, opt, gen, round_, snapshots, accepted, best_reward) -> None:
        # the state file is written last: it names the round the other files belong to
        data.save(out / "data.npz")
        model.save(out / "dynamics.pt")
        policy.save(out / "policy_state.pt")
        state = {"round": round_, "frames": len(data), "snapshots": list(snapshots), "optimizer": opt.state_dict(),
                 "generator": gen.get_state(), "log": self.log, "seed": self.seed, "accepted": accepted,
                 "best_reward": best_reward}
        save_state(out / "state.pt", state)

    def _read_state(self, out: Path, env: gym.Env) -> dict | None:
        from astrogym.surrogates.dynamics import EnsembleDynamics
        from astrogym.surrogates.transitions import Transitions

        if not (out / "state.pt").is_file():
            return None
        try:
            state = torch.load(io.BytesIO((out / "state.pt").read_bytes()), map_location="cpu", weights_only=True)
            if int(state["seed"]) != self.seed:
                raise ValueError(f"{out}/state.pt belongs to seed {state['seed']}, not {self.seed}")
            data = Transitions.load(out / "data.npz")
            state["data"] = data.subset(slice(0, int(state["frames"])))
            state["model"] = EnsembleDynamics.load(out / "dynamics.pt")
            state["policy"] = ModelBasedPolicy.load(out / "policy_state.pt", env)
        except (KeyError, TypeError, RuntimeError, OSError) as exc:
            raise ValueError(f"{out}: the resumable PO4AO state is incomplete or corrupt ({exc}); delete state.pt "
                             "to start the run again") from None
        return state


__all__ = ["ModelBasedPolicy", "PO4AOSettings", "PO4AOTrainer", "load_policy_file"]

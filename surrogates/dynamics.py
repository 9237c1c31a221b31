"""Probabilistic ensemble dynamics models (PETS-style), shared by every domain.

:class:`EnsembleDynamics` holds K members, each a network that maps ``(obs, action)`` to a
Gaussian over the *learned part* of the next observation (a :mod:`~astrogym.surrogates.structure`
splits off what is known, e.g. the shifted history) and, unless the reward is a known function,
over the reward. Members differ by their initial weights and their bootstrap resample of the
data, so their disagreement measures what the data do not pin down (epistemic), while each
member's predicted variance measures the noise of the system (aleatoric);
:meth:`EnsembleDynamics.predict` returns both separately.

Two member types, chosen by :attr:`DynamicsSpec.member`:

* ``"mlp"``: flattens the observation and the action (vector observations: the lock's history).
* ``"conv"``: ``same``-padded convolutions over an image observation with the action as extra
  channels (the AO actuator image, as PO4AO's 5 CNN members), the reward from pooled features.

Inputs and targets are standardised (statistics from the fitted data, per channel for ``conv``,
per entry for ``mlp``) and the standardisation is stored with the weights. The log-variance is
bounded softly between learned limits (Chua et al. 2018), so a member cannot claim zero noise.

Typical use::

    from astrogym.surrogates import EnsembleDynamics, collect
    data = collect(env, policy, 20_000, seed=0, noise=ExplorationNoise("gaussian", 0.05))
    model = EnsembleDynamics.for_env(env, member="conv").fit(data, epochs=20)
    pred = model.predict(data.obs[:10], data.actions[:10])   # mean, epistemic_std, aleatoric_std, ...
    model.save("runs/ao_model.pt"); EnsembleDynamics.load("runs/ao_model.pt")

Differentiable use (model-based policy training): :meth:`EnsembleDynamics.step` on torch tensors.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from astrogym.surrogates.files import load_state, save_state
from astrogym.surrogates.structure import Structure, build_structure, structure_for
from astrogym.surrogates.transitions import Transitions

FORMAT = "astrogym.surrogates.EnsembleDynamics"
VERSION = 1
MEMBERS = ("mlp", "conv")


@dataclass(frozen=True)
class DynamicsSpec:
    """Architecture of an ensemble.

    Attributes
    ----------
    obs_shape, action_shape: the env's single observation and action shapes.
    structure: :meth:`Structure.spec` of the known/learned split.
    member: ``"mlp"`` or ``"conv"``.
    members: ensemble size K.
    hidden: MLP hidden widths, or conv channels per layer.
    kernel_size: conv kernel (odd).
    learn_reward: predict the reward too (False where the caller computes it from the observation).
    """

    obs_shape: tuple
    action_shape: tuple
    structure: dict
    member: str = "mlp"
    members: int = 5
    hidden: tuple = (200, 200, 200)
    kernel_size: int = 3
    learn_reward: bool = True

    def __post_init__(self):
        if self.member not in MEMBERS:
            raise ValueError(f"DynamicsSpec.member={self.member!r}; allowed {', '.join(MEMBERS)}")
        if int(self.members) != self.members or self.members < 1:
            raise ValueError(f"DynamicsSpec.members={self.members!r}; allowed an integer >= 1")
        if not self.hidden or any(int(h) != h or h < 1 for h in self.hidden):
            raise ValueError(f"DynamicsSpec.hidden={self.hidden!r}; allowed a non-empty tuple of positive integers")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"DynamicsSpec.kernel_size={self.kernel_size!r}; allowed an odd integer >= 1")
        if self.member == "conv" and len(self.obs_shape) != 3:
            raise ValueError(f"member='conv' needs a (channels, H, W) observation, got shape {tuple(self.obs_shape)}")
        object.__setattr__(self, "obs_shape", tuple(int(s) for s in self.obs_shape))
        object.__setattr__(self, "action_shape", tuple(int(s) for s in self.action_shape))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["obs_shape"], d["action_shape"], d["hidden"] = list(self.obs_shape), list(self.action_shape), list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DynamicsSpec":
        d = dict(d)
        for key in ("obs_shape", "action_shape", "hidden"):
            d[key] = tuple(d[key])
        return cls(**d)


class Prediction(NamedTuple):
    """One-step prediction in observation units (arrays with the batch's leading dimension).

    ``mean``: ensemble mean of the next observation; ``epistemic_std``: spread of the members'
    means; ``aleatoric_std``: the noise the members predict (root mean of their variances);
    ``std``: both combined. Known parts of the observation have zero std. ``reward_*``: the same
    for the reward (``None`` when the model does not learn it).
    """

    mean: np.ndarray
    std: np.ndarray
    epistemic_std: np.ndarray
    aleatoric_std: np.ndarray
    reward_mean: np.ndarray | None
    reward_std: np.ndarray | None


def _bounded_logvar(raw: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    logvar = hi - F.softplus(hi - raw)
    return lo + F.softplus(logvar - lo)


class _MLPMember(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        layers, d = [], in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.SiLU()]
            d = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, 2 * out_dim)
        self.out_dim = out_dim

    def forward(self, obs: torch.Tensor, action: torch.Tensor):
        x = torch.cat([obs.flatten(1), action.flatten(1)], dim=1)
        mean, raw = self.head(self.body(x)).split(self.out_dim, dim=1)
        return mean, raw


class _ConvMember(nn.Module):
    """Image in (obs channels + action channels), image out (learned channels), reward from pooled features."""

    def __init__(self, in_ch: int, out_ch: int, channels: tuple[int, ...], kernel: int, reward: bool):
        super().__init__()
        layers, c = [], in_ch
        for w in channels:
            layers += [nn.Conv2d(c, w, kernel, padding=kernel // 2), nn.LeakyReLU(0.1)]
            c = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, 2 * out_ch, kernel, padding=kernel // 2)
        # a linear path from the inputs to the mean: an AO loop is close to linear (the measurement moves
        # by minus the command), which a deep stack learns slowly from closed-loop data
        self.linear = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False)
        self.reward_head = nn.Linear(2 * c, 2) if reward else None
        self.out_ch = out_ch

    def forward(self, obs: torch.Tensor, action: torch.Tensor):
        a = action if action.dim() == 4 else action[:, None]
        x = torch.cat([obs, a], dim=1)
        h = self.body(x)
        mean, raw = self.head(h).split(self.out_ch, dim=1)
        mean = mean + self.linear(x)
        mean, raw = mean.flatten(1), raw.flatten(1)
        if self.reward_head is not None:
            pooled = torch.cat([h.mean(dim=(2, 3)), h.pow(2).mean(dim=(2, 3))], dim=1)
            r_mean, r_raw = self.reward_head(pooled).split(1, dim=1)
            mean, raw = torch.cat([mean, r_mean], 1), torch.cat([raw, r_raw], 1)
        return mean, raw


class EnsembleDynamics(nn.Module):
    """K probabilistic members predicting the learned part of the next observation (and the reward).

    Parameters
    ----------
    spec: the architecture (:class:`DynamicsSpec`); :meth:`for_env` builds one from an env.
    """

    def __init__(self, spec: DynamicsSpec):
        super().__init__()
        self.spec = spec
        self.structure: Structure = build_structure(spec.structure)
        learned = int(np.prod(self.structure.learned_shape))
        self.out_dim = learned + int(spec.learn_reward)
        if spec.member == "mlp":
            in_dim = int(np.prod(spec.obs_shape)) + int(np.prod(spec.action_shape))
            members = [_MLPMember(in_dim, self.out_dim, spec.hidden) for _ in range(spec.members)]
        else:
            act_ch = 1 if len(spec.action_shape) == 2 else int(spec.action_shape[0])
            out_ch = int(self.structure.learned_shape[0])
            members = [_ConvMember(spec.obs_shape[0] + act_ch, out_ch, spec.hidden, spec.kernel_size, spec.learn_reward)
                       for _ in range(spec.members)]
        self.members = nn.ModuleList(members)
        self.max_logvar = nn.Parameter(torch.full((spec.members, self.out_dim), 0.5))
        self.min_logvar = nn.Parameter(torch.full((spec.members, self.out_dim), -10.0))
        # standardisation (set by fit); obs/action per channel (conv) or per entry (mlp), target per entry
        self.register_buffer("obs_mean", torch.zeros(spec.obs_shape))
        self.register_buffer("obs_std", torch.ones(spec.obs_shape))
        self.register_buffer("act_mean", torch.zeros(spec.action_shape))
        self.register_buffer("act_std", torch.ones(spec.action_shape))
        self.register_buffer("target_mean", torch.zeros(self.out_dim))
        self.register_buffer("target_std", torch.ones(self.out_dim))
        self.history: list[dict] = []
        self.metadata: dict = {}
        self.fitted = False

    @classmethod
    def for_env(cls, env: gym.Env, member: str = "mlp", members: int = 5, hidden: tuple | None = None,
                kernel_size: int = 3, learn_reward: bool = True, structure: Structure | None = None) -> "EnsembleDynamics":
        """An unfitted ensemble for ``env``'s spaces, with its known structure (:func:`structure_for`)."""
        if not isinstance(env.observation_space, gym.spaces.Box):
            raise TypeError(f"EnsembleDynamics models Box observations; this env has "
                            f"{type(env.observation_space).__name__}")
        if not isinstance(env.action_space, gym.spaces.Box):
            raise TypeError(f"EnsembleDynamics models Box actions; this env has {type(env.action_space).__name__}")
        structure = structure if structure is not None else structure_for(env)
        if hidden is None:
            hidden = (200, 200, 200) if member == "mlp" else (32, 32, 32)
        spec = DynamicsSpec(env.observation_space.shape, env.action_space.shape, structure.spec(), member, members,
                            tuple(hidden), kernel_size, learn_reward)
        return cls(spec)

    # -- normalisation -------------------------------------------------------------------------------
    def _norm_inputs(self, obs: torch.Tensor, action: torch.Tensor):
        a = (action - self.act_mean) / self.act_std
        if not self.structure.direct_action:
            a = torch.zeros_like(a)
        return (self.structure.features(obs) - self.obs_mean) / self.obs_std, a

    def _targets(self, obs, action, next_obs, reward) -> torch.Tensor:
        t = self.structure.target(obs, action, next_obs).flatten(1)
        if self.spec.learn_reward:
            t = torch.cat([t, reward.reshape(-1, 1).to(t.dtype)], dim=1)
        return t

    def _set_normalisation(self, obs, action, target) -> None:
        conv = self.spec.member == "conv"

        def stats(x: torch.Tensor, per_channel: bool):
            if per_channel and x.dim() >= 3:
                dims = [0] + list(range(2, x.dim()))
                m, s = x.mean(dim=dims, keepdim=True)[0], x.std(dim=dims, keepdim=True)[0]
                return m.expand(x.shape[1:]).clone(), s.expand(x.shape[1:]).clone()
            return x.mean(0), x.std(0)

        for name, x, per in (("obs", self.structure.features(obs), conv), ("act", action, conv and action.dim() >= 3)):
            m, s = stats(x, per)
            s = torch.where(s > 1e-8, s, torch.ones_like(s))
            getattr(self, f"{name}_mean").copy_(m)
            getattr(self, f"{name}_std").copy_(s)
        m, s = target.mean(0), target.std(0)
        if conv:  # one scale per learned channel image, so the member sees a translation-invariant target
            learned = int(np.prod(self.structure.learned_shape))
            n_ch = int(self.structure.learned_shape[0])
            img = target[:, :learned].reshape(-1, n_ch, learned // n_ch)
            cm, cs = img.mean(dim=(0, 2)), img.std(dim=(0, 2))
            m[:learned] = cm.repeat_interleave(learned // n_ch)
            s[:learned] = cs.repeat_interleave(learned // n_ch)
        self.target_mean.copy_(m)
        self.target_std.copy_(torch.where(s > 1e-12, s, torch.ones_like(s)))

    # -- forward -------------------------------------------------------------------------------------
    def member_forward(self, k: int, obs: torch.Tensor, action: torch.Tensor):
        """Member ``k``'s standardised mean and bounded log-variance of the target."""
        o, a = self._norm_inputs(obs, action)
        mean, raw = self.members[k](o, a)
        return mean, _bounded_logvar(raw, self.min_logvar[k], self.max_logvar[k])

    def step(self, obs: torch.Tensor, action: torch.Tensor, member: int | None = None, sample: bool = False,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Differentiable next observation (and reward) of a batch, in observation units.

        ``member``: one member's prediction, or ``None`` for the ensemble mean. ``sample`` draws
        from the member's Gaussian instead of returning its mean.
        """
        ks = range(len(self.members)) if member is None else (int(member),)
        means = []
        for k in ks:
            mean, logvar = self.member_forward(k, obs, action)
            if sample:
                noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
                mean = mean + noise * torch.exp(0.5 * logvar)
            means.append(mean)
        t = torch.stack(means).mean(0) * self.target_std + self.target_mean
        learned = int(np.prod(self.structure.learned_shape))
        part = t[:, :learned].reshape(-1, *self.structure.learned_shape)
        next_obs = self.structure.assemble(obs, action, part)
        reward = t[:, learned] if self.spec.learn_reward else None
        return next_obs, reward

    @torch.no_grad()
    def predict(self, obs, action) -> Prediction:
        """One-step prediction for a batch of NumPy ``(obs, action)`` (or a single pair)."""
        obs_t, act_t, single = self._as_batch(obs, action)
        means, variances = [], []
        for k in range(len(self.members)):
            m, logvar = self.member_forward(k, obs_t, act_t)
            means.append(m * self.target_std + self.target_mean)
            variances.append(torch.exp(logvar) * self.target_std**2)
        means, variances = torch.stack(means), torch.stack(variances)
        mean = means.mean(0)
        epistemic = means.std(0, unbiased=False) if len(self.members) > 1 else torch.zeros_like(mean)
        aleatoric = variances.mean(0).sqrt()
        learned = int(np.prod(self.structure.learned_shape))
        shape = self.structure.learned_shape
        next_mean = self.structure.assemble(obs_t, act_t, mean[:, :learned].reshape(-1, *shape))
        # spread lives on the learned part only: place it where the structure puts the learned part
        epi_full = self.structure.assemble(torch.zeros_like(obs_t), torch.zeros_like(act_t),
                                           epistemic[:, :learned].reshape(-1, *shape))
        ale_full = self.structure.assemble(torch.zeros_like(obs_t), torch.zeros_like(act_t),
                                           aleatoric[:, :learned].reshape(-1, *shape))
        epi_full, ale_full = epi_full.abs(), ale_full.abs()
        out = [next_mean, torch.sqrt(epi_full**2 + ale_full**2), epi_full, ale_full]
        r_mean = r_std = None
        if self.spec.learn_reward:
            r_mean = mean[:, learned].numpy()
            r_std = torch.sqrt(epistemic[:, learned] ** 2 + aleatoric[:, learned] ** 2).numpy()
        arrays = [x.numpy() for x in out]
        if single:
            arrays = [a[0] for a in arrays]
            r_mean = None if r_mean is None else r_mean[0]
            r_std = None if r_std is None else r_std[0]
        return Prediction(*arrays, r_mean, r_std)

    @torch.no_grad()
    def rollout(self, obs, policy_or_actions, horizon: int, member: str | int = "mean", sample: bool = False,
                seed: int = 0) -> dict[str, np.ndarray]:
        """Multi-step rollout from a batch of observations.

        Parameters
        ----------
        obs: (B, *obs_shape) start observations.
        policy_or_actions: a ``predict`` policy, or actions of shape (horizon, B, *action_shape).
        horizon: steps.
        member: ``"mean"`` (ensemble mean each step), ``"random"`` (one member per rollout, drawn
            from ``seed``, as trajectory sampling does) or a member index.
        sample: draw each step from the member's Gaussian.

        Returns
        -------
        dict with ``obs`` (horizon + 1, B, ...) and ``rewards`` (horizon, B) (NaN without a learned reward).
        """
        obs_t, _, _ = self._as_batch(obs, np.zeros((np.asarray(obs).shape[0], *self.spec.action_shape), np.float32))
        gen = torch.Generator().manual_seed(int(seed))
        if member == "random":
            k = int(torch.randint(len(self.members), (1,), generator=gen))
        elif member == "mean":
            k = None
        else:
            k = int(member)
            if not 0 <= k < len(self.members):
                raise ValueError(f"member={member!r}; allowed 'mean', 'random' or 0..{len(self.members) - 1}")
        out_obs, out_r = [obs_t.numpy()], []
        for t in range(int(horizon)):
            if callable(getattr(policy_or_actions, "predict", None)):
                act, _ = policy_or_actions.predict(obs_t.numpy(), deterministic=True)
            else:
                act = np.asarray(policy_or_actions)[t]
            act_t = torch.as_tensor(np.asarray(act, dtype=np.float32).reshape(obs_t.shape[0], *self.spec.action_shape))
            obs_t, r = self.step(obs_t, act_t, member=k, sample=sample, generator=gen)
            out_obs.append(obs_t.numpy())
            out_r.append(r.numpy() if r is not None else np.full(obs_t.shape[0], np.nan))
        return {"obs": np.stack(out_obs), "rewards": np.stack(out_r) if out_r else np.zeros((0, obs_t.shape[0]))}

    def _as_batch(self, obs, action):
        obs = np.asarray(obs, dtype=np.float32)
        action = np.asarray(action, dtype=np.float32)
        single = obs.shape == self.spec.obs_shape
        if single:
            obs, action = obs[None], action[None]
        if obs.shape[1:] != self.spec.obs_shape:
            raise ValueError(f"obs has shape {obs.shape}; expected {self.spec.obs_shape} or a batch of them")
        if action.shape != (obs.shape[0], *self.spec.action_shape):
            raise ValueError(f"action has shape {action.shape}; expected {(obs.shape[0], *self.spec.action_shape)}")
        return torch.from_numpy(obs), torch.from_numpy(action), single

    # -- training ------------------------------------------------------------------------------------
    def fit(self, data: Transitions, epochs: int = 50, batch_size: int = 256, lr: float = 1e-3,
            weight_decay: float = 1e-5, validation_fraction: float = 0.1, seed: int = 0, progress: bool = False,
            refit_normalisation: bool = True) -> "EnsembleDynamics":
        """Fit every member by Gaussian negative log-likelihood on its own bootstrap of ``data``.

        Rows are drawn without regard to episodes (one-step model); the last
        ``validation_fraction`` of a random permutation is held out and its NLL and MSE recorded
        in :attr:`history` each epoch. The global torch RNG is left as it was. ``refit_normalisation``
        False keeps the standardisation of an earlier fit (continued training on new data).
        """
        if not isinstance(data, Transitions):
            raise TypeError(f"data must be Transitions, got {type(data).__name__}")
        if data.obs.shape[1:] != self.spec.obs_shape or data.actions.shape[1:] != self.spec.action_shape:
            raise ValueError(f"data has obs {data.obs.shape[1:]} and actions {data.actions.shape[1:]}; this model "
                             f"takes {self.spec.obs_shape} and {self.spec.action_shape}")
        if len(data) < 10:
            raise ValueError(f"fit needs at least 10 transitions, got {len(data)}")
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name}={value!r}; allowed an integer >= 1")
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction={validation_fraction!r}; allowed [0, 1)")
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self._train(data, int(epochs), int(batch_size), lr, weight_decay, validation_fraction, seed, progress,
                        refit_normalisation)
        return self

    def _train(self, data, epochs, batch_size, lr, weight_decay, validation_fraction, seed, progress, refit):
        obs = torch.from_numpy(data.obs)
        act = torch.from_numpy(data.actions)
        nxt = torch.from_numpy(data.next_obs)
        rew = torch.from_numpy(data.rewards.astype(np.float32))
        target = self._targets(obs, act, nxt, rew)
        if refit or not self.fitted:
            self._set_normalisation(obs, act, target)
        target_n = (target - self.target_mean) / self.target_std
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(data))
        n_val = int(round(validation_fraction * len(data)))
        val, train = perm[:n_val], perm[n_val:]
        boots = [rng.choice(train, size=train.size, replace=True) for _ in self.members]
        params = [p for m in self.members for p in m.parameters()]
        opt = torch.optim.Adam([{"params": params, "weight_decay": weight_decay},
                                {"params": [self.max_logvar, self.min_logvar], "weight_decay": 0.0}], lr=lr)
        bar = range(epochs)
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(bar, desc="fit dynamics", unit="epoch")
        self.train()
        for epoch in bar:
            order = [rng.permutation(b) for b in boots]
            total = 0.0
            for start in range(0, train.size, batch_size):
                loss = 0.0
                for k, idx in enumerate(order):
                    i = torch.from_numpy(idx[start:start + batch_size])
                    mean, logvar = self.member_forward(k, obs[i], act[i])
                    loss = loss + (((mean - target_n[i]) ** 2) * torch.exp(-logvar) + logvar).mean()
                # keep the log-variance limits from drifting (PETS)
                loss = loss + 0.01 * (self.max_logvar.mean() - self.min_logvar.mean())
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * min(batch_size, train.size - start)
            row = {"epoch": len(self.history), "train_loss": total / max(1, train.size)}
            if n_val:
                row.update(self.evaluate_rows(obs[val], act[val], target_n[val]))
            self.history.append(row)
            if progress and n_val:
                bar.set_postfix(val_mse=f"{row['val_mse']:.3g}")
        self.eval()
        self.fitted = True

    @torch.no_grad()
    def evaluate_rows(self, obs, act, target_n) -> dict[str, float]:
        """Held-out NLL and MSE (standardised units, ensemble mean) of ``target_n``."""
        nll, means = 0.0, []
        for k in range(len(self.members)):
            mean, logvar = self.member_forward(k, obs, act)
            nll += float(((((mean - target_n) ** 2) * torch.exp(-logvar) + logvar).mean() + math.log(2 * math.pi)) / 2)
            means.append(mean)
        mse = float(((torch.stack(means).mean(0) - target_n) ** 2).mean())
        return {"val_nll": nll / len(self.members), "val_mse": mse}

    @torch.no_grad()
    def one_step_error(self, data: Transitions) -> dict[str, float]:
        """Mean squared one-step error of the learned part against its variance in ``data`` (observation
        units): ``mse``, ``signal_variance``, their ratio ``relative_mse``, and the mean predicted
        ``epistemic_std`` over the learned part."""
        obs, act = torch.from_numpy(data.obs), torch.from_numpy(data.actions)
        nxt = torch.from_numpy(data.next_obs)
        learned_true = self.structure.target(obs, act, nxt).flatten(1)
        pred = self.predict(data.obs, data.actions)
        learned_pred = self.structure.target(obs, act, torch.from_numpy(pred.mean)).flatten(1)
        epi = self.structure.target(obs, act, torch.from_numpy(pred.epistemic_std)).flatten(1)
        mse = float(((learned_pred - learned_true) ** 2).mean())
        var = float(learned_true.var())
        return {"mse": mse, "signal_variance": var, "relative_mse": mse / var if var > 0 else float("nan"),
                "epistemic_std": float(epi.mean())}

    # -- files ---------------------------------------------------------------------------------------
    def save(self, path: str | Path, **metadata: Any) -> Path:
        """Write the model (weights, architecture, standardisation, history) atomically."""
        if not self.fitted:
            raise ValueError("refusing to save an unfitted EnsembleDynamics: call fit first")
        self.metadata.update(metadata)
        state = {"format": FORMAT, "version": VERSION, "spec": self.spec.to_dict(), "weights": self.state_dict(),
                 "history": self.history, "metadata": self.metadata}
        return save_state(path, state)

    @classmethod
    def load(cls, path: str | Path) -> "EnsembleDynamics":
        """Read a file written by :meth:`save`.

        Raises
        ------
        FileNotFoundError: no such file.
        ValueError: the file is corrupt, not a dynamics model, from a newer version or inconsistent.
        """
        path = Path(path)
        state = load_state(path, FORMAT, VERSION, "ensemble dynamics model")
        try:
            model = cls(DynamicsSpec.from_dict(state["spec"]))
            model.load_state_dict(state["weights"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{path}: dynamics model file is incomplete or does not match its spec ({exc})") from None
        model.history = list(state.get("history", []))
        model.metadata = dict(state.get("metadata", {}))
        model.fitted = True
        model.eval()
        return model


__all__ = ["DynamicsSpec", "EnsembleDynamics", "Prediction"]

"""A (conditional) normalizing-flow density estimator, shared by every domain.

:class:`FlowDensityEstimator` wraps a zuko flow (neural spline flow by default, or a masked
autoregressive flow) behind ``fit`` / ``log_prob`` / ``sample`` / ``save`` / ``load``:

* **Normalisation.** Features and context are standardised with the training data's mean and
  standard deviation before the flow sees them (zuko's splines act on [-5, 5]); ``log_prob``
  is returned in the original units (the standardisation's log-Jacobian is subtracted).
* **Categorical variables** (e.g. a cloud state 0/1/2) are columns listed in ``categorical``
  with their number of categories. They are uniformly dequantised: category ``k`` is the
  interval ``[k, k + 1)``, training adds ``U(0, 1)`` noise, ``sample`` returns the integer
  part and ``log_prob`` of an integer ``k`` is the density at ``k + 0.5`` (the dequantised
  density is piecewise constant in that limit, so it is a consistent estimate of
  ``log P(k, rest)``). This is Theis et al. (2016)'s recipe; it needs nothing beyond the flow.
* **Files.** ``save`` writes one torch file atomically: a format tag and version, the
  constructor arguments, the normalisation and the weights. ``load`` refuses a missing,
  corrupt or foreign file with a ``ValueError`` saying which.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from astrogym.surrogates.files import load_state, save_state

FORMAT = "astrogym.surrogates.FlowDensityEstimator"
VERSION = 1
FLOWS = ("nsf", "maf")


@dataclass(frozen=True)
class FlowSpec:
    """What a :class:`FlowDensityEstimator` is built from (saved with it).

    Parameters
    ----------
    features: dimension of the modelled variable.
    context: dimension of the conditioning variable (0: unconditional).
    flow: ``"nsf"`` (neural spline flow) or ``"maf"`` (affine masked autoregressive flow).
    transforms: number of flow transforms.
    hidden: hidden layer widths of each transform's conditioner.
    categorical: ``{column: number of categories}`` for the discrete feature columns.
    """

    features: int
    context: int = 0
    flow: str = "nsf"
    transforms: int = 3
    hidden: tuple[int, ...] = (64, 64)
    categorical: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.features, int) or self.features < 1:
            raise ValueError(f"features={self.features!r} must be an integer >= 1")
        if not isinstance(self.context, int) or self.context < 0:
            raise ValueError(f"context={self.context!r} must be an integer >= 0")
        if self.flow not in FLOWS:
            raise ValueError(f"flow={self.flow!r} is not allowed; choose one of {list(FLOWS)}")
        if not isinstance(self.transforms, int) or not 1 <= self.transforms <= 32:
            raise ValueError(f"transforms={self.transforms!r} is out of range; allowed [1, 32]")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden={self.hidden!r} must be a non-empty sequence of positive widths")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        cats = {int(k): int(v) for k, v in dict(self.categorical).items()}
        for col, n in cats.items():
            if not 0 <= col < self.features or n < 2:
                raise ValueError(f"categorical={dict(self.categorical)!r}: column {col} must be in [0, "
                                 f"{self.features - 1}] with at least 2 categories")
        object.__setattr__(self, "categorical", cats)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["categorical"] = {str(k): v for k, v in self.categorical.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "FlowSpec":
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", (64, 64)))
        d["categorical"] = {int(k): int(v) for k, v in dict(d.get("categorical", {})).items()}
        return cls(**d)


def _as_2d(name: str, x, width: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1 and width == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(f"{name} must have shape (n, {width}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries")
    return a


class FlowDensityEstimator:
    """A conditional density ``p(x | c)`` by a normalizing flow, with standardisation and categorical columns.

    Parameters
    ----------
    spec: a :class:`FlowSpec`, or its fields as keyword arguments.

    Examples
    --------
    >>> est = FlowDensityEstimator(features=2)
    >>> est.fit(samples, epochs=50)                       # doctest: +SKIP
    >>> est.log_prob(samples).mean()                      # doctest: +SKIP
    """

    def __init__(self, spec: FlowSpec | None = None, **kwargs):
        self.spec = spec if spec is not None else FlowSpec(**kwargs)
        s = self.spec
        self.flow = self._new_flow(seed=0)
        self.x_mean = np.zeros(s.features)
        self.x_std = np.ones(s.features)
        self.c_mean = np.zeros(s.context)
        self.c_std = np.ones(s.context)
        self.history: list[dict] = []  # one row per epoch: train and validation mean log-likelihood
        self.metadata: dict = {}  # what the flow's owner saves with it (JSON-like values: a cadence, a threshold)

    def _new_flow(self, seed: int):
        """A freshly initialised zuko flow; its weights depend on ``seed`` only (the caller's torch RNG is untouched)."""
        import zuko

        s = self.spec
        flow_class = zuko.flows.NSF if s.flow == "nsf" else zuko.flows.MAF
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return flow_class(s.features, s.context, transforms=s.transforms, hidden_features=s.hidden)

    # -- normalisation -------------------------------------------------------------------------------
    def _dequantise(self, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        x = x.copy()
        for col, n in self.spec.categorical.items():
            k = x[:, col]
            if np.any((k != np.round(k)) | (k < 0) | (k >= n)):
                raise ValueError(f"column {col} is categorical with {n} categories: values must be integers in "
                                 f"[0, {n - 1}]")
            x[:, col] = k + (rng.random(k.shape) if rng is not None else 0.5)
        return x

    def _tensors(self, x: np.ndarray, context) -> tuple[torch.Tensor, torch.Tensor | None]:
        xt = torch.as_tensor((x - self.x_mean) / self.x_std, dtype=torch.float32)
        if self.spec.context == 0:
            if context is not None:
                raise ValueError("this estimator is unconditional: context must be None")
            return xt, None
        if context is None:
            raise ValueError(f"context of shape (n, {self.spec.context}) is required")
        c = _as_2d("context", context, self.spec.context)
        if c.shape[0] != x.shape[0]:
            if c.shape[0] != 1:
                raise ValueError(f"context has {c.shape[0]} rows; x has {x.shape[0]} (or give one row for all)")
            c = np.repeat(c, x.shape[0], axis=0)
        return xt, torch.as_tensor((c - self.c_mean) / self.c_std, dtype=torch.float32)

    def _log_jacobian(self) -> float:
        return float(np.sum(np.log(self.x_std)))

    # -- fitting -------------------------------------------------------------------------------------
    def fit(self, x, context=None, *, epochs: int = 100, batch_size: int = 256, lr: float = 1e-3,
            validation_fraction: float = 0.1, patience: int = 20, seed: int = 0, progress: bool = False
            ) -> "FlowDensityEstimator":
        """Maximum likelihood with Adam from weights initialised by ``seed``; keeps the best validation epoch.

        The result depends on the data and ``seed`` only (on one torch thread; more threads may reorder
        sums); the caller's torch RNG is left as it was.

        Raises
        ------
        ValueError: shapes that do not match the spec, non-finite values, categorical values outside
            their categories, fewer than 10 samples.
        """
        s = self.spec
        x = _as_2d("x", x, s.features)
        if x.shape[0] < 10:
            raise ValueError(f"fit needs at least 10 samples, got {x.shape[0]}")
        if s.context and context is None:
            raise ValueError(f"context of shape (n, {s.context}) is required")
        if not s.context and context is not None:
            raise ValueError("this estimator is unconditional: context must be None")
        c = _as_2d("context", context, s.context) if s.context else None
        if c is not None and c.shape[0] != x.shape[0]:
            raise ValueError(f"context has {c.shape[0]} rows; x has {x.shape[0]}")
        with torch.random.fork_rng():
            return self._train(x, c, epochs, batch_size, lr, validation_fraction, patience, seed, progress)

    def _train(self, x, c, epochs, batch_size, lr, validation_fraction, patience, seed, progress):
        self.flow = self._new_flow(seed)
        self.history = []
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        order = rng.permutation(x.shape[0])
        n_val = max(1, int(round(validation_fraction * x.shape[0])))
        val, train = order[:n_val], order[n_val:]
        deq = self._dequantise(x, rng)
        self.x_mean, self.x_std = deq[train].mean(axis=0), deq[train].std(axis=0) + 1e-9
        if c is not None:
            self.c_mean, self.c_std = c[train].mean(axis=0), c[train].std(axis=0) + 1e-9
        # validation keeps one dequantisation, so its score moves with the model, not with fresh noise
        x_val, c_val = self._tensors(deq[val], None if c is None else c[val])
        optimiser = torch.optim.Adam(self.flow.parameters(), lr=lr)
        best, best_state, stale = -math.inf, None, 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, desc="flow fit", unit="epoch")
        for epoch in range(epochs):
            deq = self._dequantise(x, rng)  # fresh dequantisation noise each epoch
            xt, ct = self._tensors(deq, c)
            self.flow.train()
            perm = torch.as_tensor(rng.permutation(train))
            total = 0.0
            for start in range(0, len(perm), batch_size):
                idx = perm[start:start + batch_size]
                dist = self.flow(None if ct is None else ct[idx])
                loss = -dist.log_prob(xt[idx]).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            with torch.no_grad():
                self.flow.eval()
                val_ll = float(self.flow(c_val).log_prob(x_val).mean())
            jac = self._log_jacobian()
            self.history.append({"epoch": epoch, "train_log_likelihood": -total / len(train) - jac,
                                 "validation_log_likelihood": val_ll - jac})
            if bar is not None:
                bar.set_postfix(validation_ll=f"{val_ll - jac:.3f}")
                bar.update()
            if val_ll > best:
                best, stale = val_ll, 0
                best_state = {k: v.detach().clone() for k, v in self.flow.state_dict().items()}
            else:
                stale += 1
                if stale >= patience:
                    break
        if bar is not None:
            bar.close()
        if best_state is not None:
            self.flow.load_state_dict(best_state)
        self.flow.eval()
        return self

    # -- inference -----------------------------------------------------------------------------------
    def log_prob(self, x, context=None) -> np.ndarray:
        """``log p(x | context)`` per row, in the original units (categorical columns: see the module doc)."""
        x = self._dequantise(_as_2d("x", x, self.spec.features), None)
        xt, ct = self._tensors(x, context)
        with torch.no_grad():
            return self.flow(ct).log_prob(xt).double().numpy() - self._log_jacobian()

    def sample(self, n: int, context=None, seed: int | None = None) -> np.ndarray:
        """``n`` samples (one per context row when ``context`` has ``n`` rows, else all from one context row)."""
        if n < 1:
            raise ValueError(f"n={n} must be >= 1")
        if seed is not None:
            torch.manual_seed(seed)
        dummy = np.zeros((n, self.spec.features))
        _, ct = self._tensors(dummy, context)
        with torch.no_grad():
            z = self.flow(ct).sample(() if ct is not None else (n,))
        x = z.double().numpy() * self.x_std + self.x_mean
        for col, k in self.spec.categorical.items():
            x[:, col] = np.clip(np.floor(x[:, col]), 0, k - 1)
        return x

    # -- files ---------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "spec": self.spec.to_dict(),
                "x_mean": self.x_mean.tolist(), "x_std": self.x_std.tolist(), "c_mean": self.c_mean.tolist(),
                "c_std": self.c_std.tolist(), "weights": self.flow.state_dict(), "history": self.history,
                "metadata": self.metadata}

    def save(self, path: str | Path) -> Path:
        """Write the estimator to ``path`` atomically (a temporary file renamed into place)."""
        return save_state(path, self.state())

    @classmethod
    def load(cls, path: str | Path) -> "FlowDensityEstimator":
        """Read a file written by :meth:`save`.

        Raises
        ------
        FileNotFoundError: no such file.
        ValueError: the file is corrupt, not an astrogym flow, or from a newer format version.
        """
        path = Path(path)
        state = load_state(path, FORMAT, VERSION, "flow density estimator")
        try:
            est = cls(FlowSpec.from_dict(state["spec"]))
            est.flow.load_state_dict(state["weights"])
        except (KeyError, TypeError, RuntimeError) as exc:
            raise ValueError(f"{path}: flow file is incomplete or does not match its spec ({exc})") from None
        est.x_mean, est.x_std = np.asarray(state["x_mean"]), np.asarray(state["x_std"])
        est.c_mean, est.c_std = np.asarray(state["c_mean"]), np.asarray(state["c_std"])
        est.history = list(state.get("history", []))
        est.metadata = dict(state.get("metadata", {}))
        est.flow.eval()
        return est

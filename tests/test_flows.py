"""The flow density estimator against densities of known entropy; categorical columns; files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astrogym.surrogates.flows import FlowDensityEstimator, FlowSpec

torch.set_num_threads(1)
SMALL = dict(transforms=2, hidden=(32, 32))


def test_log_likelihood_of_a_correlated_gaussian_is_its_entropy():
    rng = np.random.default_rng(0)
    cov = 4.0 * np.array([[1.0, 0.8], [0.8, 1.0]])  # scaled and shifted: the standardisation must undo it
    entropy = 0.5 * np.log((2 * np.pi * np.e) ** 2 * np.linalg.det(cov))
    est = FlowDensityEstimator(features=2, **SMALL).fit(rng.multivariate_normal([3, -1], cov, 3000), epochs=30)
    held_out = rng.multivariate_normal([3, -1], cov, 4000)
    assert -est.log_prob(held_out).mean() == pytest.approx(entropy, abs=0.05)
    assert est.history and np.isfinite(est.history[-1]["validation_log_likelihood"])


def test_conditional_density_follows_its_context():
    rng = np.random.default_rng(1)
    c = rng.uniform(-1, 1, (3000, 1))
    sd = 0.2 + 0.3 * (c[:, 0] + 1)
    est = FlowDensityEstimator(features=1, context=1, **SMALL).fit(rng.normal(2 * c[:, 0], sd)[:, None], c,
                                                                   epochs=30)
    ct = rng.uniform(-1, 1, (4000, 1))
    st = 0.2 + 0.3 * (ct[:, 0] + 1)
    yt = rng.normal(2 * ct[:, 0], st)
    true = -0.5 * ((yt - 2 * ct[:, 0]) / st) ** 2 - np.log(st * np.sqrt(2 * np.pi))
    assert est.log_prob(yt[:, None], ct).mean() == pytest.approx(true.mean(), abs=0.05)
    for context, mean, sd in ((0.5, 1.0, 0.65), (-0.5, -1.0, 0.35)):
        samples = est.sample(4000, np.full((1, 1), context), seed=0)[:, 0]
        assert samples.mean() == pytest.approx(mean, abs=0.1) and samples.std() == pytest.approx(sd, rel=0.15)


def test_categorical_columns_are_dequantised_and_sampled_as_integers():
    rng = np.random.default_rng(2)
    p = np.array([0.6, 0.3, 0.1])
    k = rng.choice(3, 3000, p=p)
    est = FlowDensityEstimator(features=2, categorical={0: 3}, **SMALL).fit(np.stack([k, rng.normal(k, 0.3)], 1),
                                                                          epochs=40)
    s = est.sample(4000, seed=1)
    assert set(np.unique(s[:, 0])) <= {0.0, 1.0, 2.0}
    np.testing.assert_allclose(np.bincount(s[:, 0].astype(int), minlength=3) / 4000, p, atol=0.03)
    kt = rng.choice(3, 4000, p=p)
    yt = rng.normal(kt, 0.3)
    true = np.log(p[kt]) - 0.5 * ((yt - kt) / 0.3) ** 2 - np.log(0.3 * np.sqrt(2 * np.pi))
    assert est.log_prob(np.stack([kt, yt], 1)).mean() == pytest.approx(true.mean(), abs=0.12)
    with pytest.raises(ValueError, match=r"column 0 is categorical with 3 categories: values must be integers in "
                                         r"\[0, 2\]"):
        est.log_prob(np.array([[1.5, 0.0]]))


def test_save_load_round_trip_and_clear_errors(tmp_path):
    rng = np.random.default_rng(3)
    est = FlowDensityEstimator(features=2, context=1, **SMALL).fit(rng.normal(size=(200, 2)),
                                                                   rng.normal(size=(200, 1)), epochs=3)
    path = est.save(tmp_path / "flow.pt")
    back = FlowDensityEstimator.load(path)
    x, c = rng.normal(size=(50, 2)), rng.normal(size=(50, 1))
    np.testing.assert_array_equal(back.log_prob(x, c), est.log_prob(x, c))
    assert back.spec == est.spec and not list(tmp_path.glob("*.tmp"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable flow density estimator file"):
        FlowDensityEstimator.load(bad)
    torch.save({"format": "someone-else", "weights": {}}, bad)
    with pytest.raises(ValueError, match="not an astrogym flow density estimator"):
        FlowDensityEstimator.load(bad)
    state = est.state()
    state["version"] = 99
    torch.save(state, bad)
    with pytest.raises(ValueError, match="format version 99 is not supported"):
        FlowDensityEstimator.load(bad)
    with pytest.raises(FileNotFoundError):
        FlowDensityEstimator.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("kwargs, match", [
    ({"features": 0}, "features=0"), ({"features": 2, "flow": "glow"}, "flow='glow' is not allowed"),
    ({"features": 2, "categorical": {3: 2}}, "column 3 must be in"), ({"features": 2, "transforms": 0}, "transforms"),
])
def test_invalid_specs_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FlowSpec(**kwargs)


def test_inputs_are_checked():
    est = FlowDensityEstimator(features=2, context=1, **SMALL)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        est.fit(np.zeros((20, 3)), np.zeros((20, 1)))
    with pytest.raises(ValueError, match="context of shape"):
        est.fit(np.zeros((20, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        est.fit(np.full((20, 2), np.nan), np.zeros((20, 1)))

"""The GNN scheduling policy (agents/scheduling/gnn.py): equivariance, size independence, masks, save/load, prior."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th

import astrogym  # noqa: F401
from astrogym.agents.scheduling.gnn import (GINELayer, GNNScheduler, GNNSchedulingPolicy, obs_to_torch,
                                            shipped_policy)
from astrogym.agents.scheduling.greedy import GreedyScheduler

ENV = "astrogym/TelescopeScheduling-v0"
MAX = 40


def _env(n_targets, seed=0, **kw):
    return gym.make(ENV, n_targets=n_targets, catalogue_seed=seed, max_targets=MAX, wait_s=60.0, **kw)


def _policy(obs_space, act_space, randomise=True, seed=0):
    th.manual_seed(seed)
    policy = GNNSchedulingPolicy(obs_space, act_space, lambda _: 1e-3, hidden=16, n_layers=2)
    if randomise:  # the heads start at zero (the prior alone); give every weight a value for the tests
        with th.no_grad():
            for p in policy.parameters():
                p.normal_(0.0, 0.3)
    policy.set_training_mode(False)
    return policy


def _obs_after(env, seed, steps=5):
    obs, _ = env.reset(seed=seed)
    greedy = GreedyScheduler.for_env(env)
    for _ in range(steps):
        obs, *_ = env.step(greedy.predict(obs)[0])
    return obs


def _logits(policy, obs):
    with th.no_grad():
        logits, value = policy.logits_and_value(obs_to_torch(obs))
    return logits.numpy(), value.numpy()


def test_logits_permute_with_the_targets():
    env = _env(30)
    obs = _obs_after(env, 3)
    policy = _policy(env.observation_space, env.action_space)
    n = int(obs["node_mask"].sum())
    rng = np.random.default_rng(0)
    perm = rng.permutation(n)  # new target i is old target perm[i]
    inv = np.empty(n, np.int64)
    inv[perm] = np.arange(n)
    p = {k: v.copy() for k, v in obs.items()}
    p["nodes"][:n] = obs["nodes"][perm]
    e = int(obs["edge_mask"].sum())
    order = rng.permutation(e)  # the edge list's order must not matter either
    p["edge_index"][:, :e] = inv[obs["edge_index"][:, :e][:, order]]
    p["edges"][:e] = obs["edges"][order]
    logits, value = _logits(policy, obs)
    plogits, pvalue = _logits(policy, p)
    np.testing.assert_allclose(plogits[0, :n], logits[0, :n][perm], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(plogits[0, MAX], logits[0, MAX], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pvalue, value, rtol=1e-4, atol=1e-5)


def test_batch_of_sizes_matches_each_graph_alone_and_unpadded():
    envs = [_env(10, seed=1), _env(25, seed=2), _env(40, seed=3)]
    obs = [_obs_after(env, 10 + i) for i, env in enumerate(envs)]
    policy = _policy(envs[0].observation_space, envs[0].action_space)
    batch = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    blogits, bvalue = _logits(policy, batch)
    for i, o in enumerate(obs):
        logits, value = _logits(policy, o)
        np.testing.assert_allclose(blogits[i], logits[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bvalue[i], value[0], rtol=1e-4, atol=1e-5)
        # the same graph without its padding (its own number of slots): the same scores
        n, e = int(o["node_mask"].sum()), int(o["edge_mask"].sum())
        bare = {"nodes": o["nodes"][:n], "edge_index": o["edge_index"][:, :e], "edges": o["edges"][:e],
                "globals": o["globals"], "node_mask": o["node_mask"][:n], "edge_mask": o["edge_mask"][:e]}
        blog, bval = _logits(policy, bare)
        np.testing.assert_allclose(blog[0, :n], logits[0, :n], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(blog[0, n], logits[0, MAX], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bval, value, rtol=1e-4, atol=1e-5)


def test_padding_and_masked_actions_get_no_probability():
    env = _env(12)
    obs = _obs_after(env, 4)
    policy = _policy(env.observation_space, env.action_space)
    t = {k: v[None] for k, v in obs_to_torch(obs).items()}
    with th.no_grad():
        probs = policy.get_distribution(t, action_masks=np.ones((1, MAX + 1), bool)).distribution.probs[0].numpy()
        assert np.all(probs[12:MAX] == 0.0)  # no mask from the env: padding still gets none
        mask = env.unwrapped.action_masks()
        probs = policy.get_distribution(t, action_masks=mask[None]).distribution.probs[0].numpy()
    assert np.all(probs[~mask] == 0.0) and probs[mask].sum() == pytest.approx(1.0, abs=1e-5)


def test_gine_layer_is_torch_geometric_gineconv_with_mean_aggregation():
    from torch_geometric.nn import GINEConv

    th.manual_seed(0)
    layer = GINELayer(8)
    conv = GINEConv(layer.update, edge_dim=2, aggr="mean")
    conv.lin.load_state_dict(layer.edge.state_dict())
    h = th.randn(20, 8)
    src, dst = th.randint(0, 20, (70,)), th.randint(0, 19, (70,))  # node 19 has no in-edges
    e = th.rand(70, 2)
    deg = th.zeros(20).index_add_(0, dst, th.ones(70))
    ours = layer(h, src, dst, e, 1.0 / deg.clamp_min(1.0))
    theirs = h + conv(h, th.stack([src, dst]), e)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_untrained_policy_acts_as_greedy():
    env = _env(30, catalogue_window_fraction=0.2)
    policy = _policy(env.observation_space, env.action_space, randomise=False)
    gnn, greedy = GNNScheduler(policy, env), GreedyScheduler.for_env(env)
    obs, _ = env.reset(seed=11)
    for _ in range(60):
        a, b = gnn.predict(obs)[0], greedy.predict(obs)[0]
        assert a == b
        obs, _, done, _, _ = env.step(a)
        if done:
            break


def test_saves_loads_and_acts_through_trained_policy(tmp_path):
    from sb3_contrib import MaskablePPO

    from astrogym.agents.checkpoints import TrainedPolicy, load_model
    from astrogym.agents.registry import PolicyContext

    env = _env(15)
    model = MaskablePPO(GNNSchedulingPolicy, env, n_steps=32, batch_size=16, n_epochs=1, seed=0,
                        policy_kwargs=dict(hidden=16, n_layers=1))
    model.learn(32)
    path = tmp_path / "gnn.zip"
    model.save(path)
    loaded, algorithm = load_model(path)
    assert algorithm.name == "maskable_ppo" and isinstance(loaded.policy, GNNSchedulingPolicy)
    obs = _obs_after(env, 2)
    np.testing.assert_allclose(_logits(loaded.policy, obs)[0], _logits(model.policy, obs)[0], rtol=1e-5, atol=1e-5)
    trained = TrainedPolicy(loaded, algorithm, env=env)
    action, _ = trained.predict(obs)
    assert env.unwrapped.action_masks()[int(action)]
    # the registry's adapter: the same model in envs of other sizes (fewer and more slots than it has)
    for n in (6, 15, 55):
        other = gym.make(ENV, n_targets=n, wait_s=60.0)
        policy = shipped_policy(PolicyContext(other, lambda **k: other, options={"path": str(path)}))
        obs, _ = other.reset(seed=5)
        for _ in range(20):
            action, _ = policy.predict(obs)
            assert other.unwrapped.action_masks()[int(action)]
            obs, _, done, _, info = other.step(action)
            assert not info["invalid_action"]
            if done:
                break


def test_catalogue_pool_draws_sizes_and_keeps_the_disk_cache_clean(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTROGYM_CACHE_DIR", str(tmp_path))
    env = gym.make(ENV, n_targets=20, max_targets=60, n_targets_range=(10, 60), catalogue_pool=3)
    sizes = []
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        n = len(env.unwrapped.catalogue)
        sizes.append(n)
        assert 10 <= n <= 60 and obs["nodes"].shape == (60, 16) and int(obs["node_mask"].sum()) == n
    assert len(set(sizes)) > 1
    assert not list(tmp_path.rglob("*.npz"))  # pool tables stay in memory
    again = gym.make(ENV, n_targets=20, max_targets=60, n_targets_range=(10, 60), catalogue_pool=3)
    again.reset(seed=4)
    assert len(again.unwrapped.catalogue) == sizes[4]  # the pool and the draw are reproducible
    with pytest.raises(ValueError, match="max_targets"):
        gym.make(ENV, n_targets_range=(10, 60))

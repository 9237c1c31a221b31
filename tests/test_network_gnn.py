"""The network GNN (agents/network/gnn.py): untrained it is the coordinated greedy; the shipped model loads and acts;
``astrogym train`` writes a checkpoint of it that loads."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
import yaml

import astrogym  # noqa: F401
from astrogym.agents.network.gnn import SHIPPED, NetworkGNNPolicy, for_env, load_network_gnn
from astrogym.agents.network.greedy import CoordinatedGreedy, NetworkGreedy
from astrogym.agents.registry import PolicyContext, make_policy
from astrogym.agents.scheduling.gnn import obs_to_torch

ENV = "astrogym/TelescopeNetwork-v0"


def _env(**kw):
    return gym.make(ENV, **{"n_targets": 60, "wait_s": 60.0, "date": "2026-12-15", "date_range_days": 30, **kw})


def _coordination_cases(obs, action):
    """Copies of ``obs`` in which the blind greedy's ``action`` is in flight at another telescope, or better placed
    at another telescope that is free in 30 s (the two rules of CoordinatedGreedy)."""
    from astrogym.envs.network import kernels as NK
    from astrogym.envs.scheduling.features import NF_ALT

    other = int(np.argmin(obs["telescopes"][:, NK.TF_DECIDING]))
    flight = {k: v.copy() for k, v in obs.items()}
    flight["site_nodes"][action, other, NK.SN_IN_FLIGHT] = 1.0
    handover = {k: v.copy() for k, v in obs.items()}
    handover["telescopes"][other, NK.TF_RUNNING], handover["telescopes"][other, NK.TF_BUSY] = 1.0, 0.1
    handover["site_nodes"][action, other, NK.SN_VISIBLE] = 1.0
    handover["site_nodes"][action, other, NK.SN_ALT] = min(1.0, obs["nodes"][action, NF_ALT] + 20.0 / 90.0)
    return [flight, handover]


@pytest.mark.parametrize("seed", [3, 4])
def test_untrained_policy_acts_as_coordinated_greedy(seed):
    """Same action as CoordinatedGreedy, through both action paths (the registry's adapter and SB3's masked
    predict), on 36 observations of a night and on copies of them where coordination changes the choice."""
    env = _env()
    th.manual_seed(seed)
    policy = NetworkGNNPolicy(env.observation_space, env.action_space, lambda _: 1e-3, hidden=16)
    policy.set_training_mode(False)
    gnn, coordinated, blind = for_env(policy, env), CoordinatedGreedy.for_env(env), NetworkGreedy.for_env(env)
    obs, _ = env.reset(seed=seed)
    compared = disagreements = 0
    for k in range(360):
        expected, blind_action = coordinated.predict(obs)[0], blind.predict(obs)[0]
        if k % 10 == 0:
            cases = [obs] + (_coordination_cases(obs, blind_action) if blind_action < env.unwrapped.wait_action
                             else [])
            for case in cases:
                want = coordinated.predict(case)[0]
                assert gnn.predict(case)[0] == want
                with th.no_grad():
                    sb3 = policy.predict(case, deterministic=True, action_masks=env.unwrapped.action_masks())[0]
                assert int(sb3) == want
                compared += 1
                disagreements += int(blind.predict(case)[0] != want)
        obs, _, done, _, _ = env.step(blind_action if k % 3 == 0 else expected)  # the blind one makes duplicates
        if done:
            break
    assert compared >= 36 and disagreements >= 10, (compared, disagreements)


def test_prior_floors_targets_in_flight_and_inputs_do_not_depend_on_the_network_size():
    env = _env(sites="la_palma,siding_spring", n_targets=20)
    policy = NetworkGNNPolicy(env.observation_space, env.action_space, lambda _: 1e-3, hidden=16)
    obs, _ = env.reset(seed=1)
    in_flight = np.zeros(obs["node_mask"].shape, bool)
    in_flight[[0, 3, 7]] = True
    obs["site_nodes"][in_flight, 1, 2] = 1.0  # in flight at telescope 1 (SN_IN_FLIGHT)
    z = policy.features_extractor.encode(obs_to_torch(obs))
    rel = z["rel"][0].numpy()
    assert np.all(rel[in_flight] == -8.0)
    # the same model in a 3-telescope network: nothing in it is sized by the number of telescopes
    other = _env(sites="la_palma,siding_spring,cerro_pachon", n_targets=20)
    obs3, _ = other.reset(seed=2)
    logits, value = policy.logits_and_value(obs_to_torch(obs3))
    assert logits.shape == (1, other.action_space.n) and th.isfinite(value).all()


@pytest.mark.skipif(not SHIPPED.is_file(), reason="agents/shipped/network_gnn.zip not shipped yet")
def test_shipped_checkpoint_loads_and_acts_within_the_mask():
    record = yaml.safe_load(SHIPPED.with_suffix(".yml").read_text())
    assert record["policy"] == "gnn" and record["env_id"] == ENV
    assert isinstance(load_network_gnn(), NetworkGNNPolicy)
    # by name through the registry, in the training network and in a smaller one (2 sites, 30 targets)
    for env in (_env(n_targets=200), _env(sites="la_palma,siding_spring", n_targets=30)):
        policy = make_policy("gnn", PolicyContext(env, None))
        obs, _ = env.reset(seed=7)
        for _ in range(40):
            action, _ = policy.predict(obs)
            assert env.unwrapped.action_masks()[int(action)]
            obs, _, done, _, info = env.step(action)
            assert not info["invalid_action"]
            if done:
                break


def test_train_smoke_run_writes_a_checkpoint_that_loads(tmp_path):
    from astrogym.experiments.cli import main

    config = tmp_path / "tiny.yml"
    config.write_text(yaml.safe_dump({ENV: {
        "n_timesteps": 200, "policy": "astrogym.agents.network.gnn:NetworkGNNPolicy",
        "policy_kwargs": {"hidden": 8, "n_layers": 1, "readout_s": 8.0},
        "env_kwargs": {"sites": "la_palma,siding_spring", "n_targets": 10, "wait_s": 900.0},  # short nights
        "n_envs": 1, "torch_threads": 1, "n_steps": 100, "batch_size": 50, "n_epochs": 1,
        "eval_freq": 200, "eval_episodes": 1, "checkpoint_freq": 200}}))
    run = tmp_path / "run"
    assert main(["train", ENV, "--algo", "maskable_ppo", "--scenario", "small", "--config", str(config),
                 "--seed", "1", "--run-dir", str(run), "--no-progress"]) == 0
    assert (run / "best_model.zip").is_file()
    policy = load_network_gnn(run)
    assert isinstance(policy, NetworkGNNPolicy) and policy.hidden == 8
    env = _env(sites="la_palma,siding_spring", n_targets=10)
    gnn = make_policy(str(run), PolicyContext(env, None))  # a run folder, as `astrogym evaluate --policy RUN` loads it
    obs, _ = env.reset(seed=5)
    for _ in range(10):
        action, _ = gnn.predict(obs)
        assert env.unwrapped.action_masks()[int(action)]
        obs, *_ = env.step(action)

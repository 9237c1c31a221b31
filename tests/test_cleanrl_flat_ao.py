"""External RL code on the AO env: a CleanRL-style PPO (``ppo_continuous_action.py``) with ``action_layout="flat"``.

CleanRL's single-file PPO assumes a flat 1-D ``Box`` action (a diagonal Normal over its entries),
so the grid layout's (N+1, N+1) image does not fit it; the flat layout does. The loop below keeps
CleanRL's structure (vector env with ClipAction / RecordEpisodeStatistics / NormalizeObservation
wrappers, rollout, GAE, clipped surrogate, value loss, entropy bonus, minibatch epochs) at a size
that runs in seconds on a CPU. It uses Gymnasium >= 1.0's vector API: with the default next-step
autoreset, the step after an episode ends is the reset step (its action is ignored), so that
transition is masked out of the losses.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest

import astrogym  # noqa: F401

torch = pytest.importorskip("torch")
nn = torch.nn

ENV_ID = "astrogym/AdaptiveOpticsSmall-v0"
NUM_ENVS, NUM_STEPS, NUM_UPDATES = 2, 64, 3  # 384 env steps
EPISODE_FRAMES = 40
UPDATE_EPOCHS, NUM_MINIBATCHES = 2, 4
GAMMA, GAE_LAMBDA, CLIP_COEF, ENT_COEF, VF_COEF, MAX_GRAD_NORM, LR = 0.99, 0.95, 0.2, 0.0, 0.5, 0.5, 3e-4


def make_env(seed: int):
    def thunk():
        env = gym.make(ENV_ID, action_layout="flat", episode_frames=EPISODE_FRAMES)
        env = gym.wrappers.FlattenObservation(env)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env = gym.wrappers.ClipAction(env)
        env = gym.wrappers.NormalizeObservation(env)
        env.action_space.seed(seed)
        return env

    return thunk


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 32):
        super().__init__()
        self.critic = nn.Sequential(layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
                                    layer_init(nn.Linear(hidden, 1), std=1.0))
        self.actor_mean = nn.Sequential(layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
                                        layer_init(nn.Linear(hidden, act_dim), std=0.01))
        self.actor_logstd = nn.Parameter(torch.full((1, act_dim), -1.0))

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        mean = self.actor_mean(x)
        std = torch.exp(self.actor_logstd.expand_as(mean))
        probs = torch.distributions.Normal(mean, std)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action).sum(1), probs.entropy().sum(1), self.critic(x)


def test_cleanrl_style_ppo_runs_on_the_flat_layout():
    start = time.perf_counter()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    envs = gym.vector.SyncVectorEnv([make_env(i) for i in range(NUM_ENVS)])
    assert isinstance(envs.single_action_space, gym.spaces.Box) and len(envs.single_action_space.shape) == 1
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    act_dim = int(envs.single_action_space.shape[0])
    agent = Agent(obs_dim, act_dim)
    optimizer = torch.optim.Adam(agent.parameters(), lr=LR, eps=1e-5)

    obs = torch.zeros((NUM_STEPS, NUM_ENVS, obs_dim))
    actions = torch.zeros((NUM_STEPS, NUM_ENVS, act_dim))
    logprobs = torch.zeros((NUM_STEPS, NUM_ENVS))
    rewards = torch.zeros((NUM_STEPS, NUM_ENVS))
    dones = torch.zeros((NUM_STEPS, NUM_ENVS))
    valid = torch.zeros((NUM_STEPS, NUM_ENVS))
    values = torch.zeros((NUM_STEPS, NUM_ENVS))

    next_obs, _ = envs.reset(seed=0)
    next_obs = torch.as_tensor(next_obs, dtype=torch.float32)
    next_done = torch.zeros(NUM_ENVS)
    autoreset = np.zeros(NUM_ENVS, bool)  # this step only resets the sub-env (next-step autoreset)
    episode_returns, episode_lengths, losses = [], [], []

    for _ in range(NUM_UPDATES):
        for step in range(NUM_STEPS):
            obs[step], dones[step] = next_obs, next_done
            valid[step] = torch.as_tensor(~autoreset, dtype=torch.float32)
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step], actions[step], logprobs[step] = value.flatten(), action, logprob
            next_obs, reward, terminations, truncations, infos = envs.step(action.numpy())
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            autoreset = np.logical_or(terminations, truncations)
            next_obs = torch.as_tensor(next_obs, dtype=torch.float32)
            next_done = torch.as_tensor(autoreset, dtype=torch.float32)
            if "episode" in infos:
                for i in np.flatnonzero(infos["_episode"]):
                    episode_returns.append(float(infos["episode"]["r"][i]))
                    episode_lengths.append(int(infos["episode"]["l"][i]))

        with torch.no_grad():  # GAE; an episode's end is its last bootstrapped step (CleanRL's convention)
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(NUM_STEPS)):
                if t == NUM_STEPS - 1:
                    nextnonterminal, nextvalues = 1.0 - next_done, next_value
                else:
                    nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
                delta = rewards[t] + GAMMA * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + GAMMA * GAE_LAMBDA * nextnonterminal * lastgaelam
            returns = advantages + values

        b_obs, b_actions = obs.reshape(-1, obs_dim), actions.reshape(-1, act_dim)
        b_logprobs, b_advantages = logprobs.reshape(-1), advantages.reshape(-1)
        b_returns, b_values, b_valid = returns.reshape(-1), values.reshape(-1), valid.reshape(-1)
        batch_size = NUM_STEPS * NUM_ENVS
        minibatch_size = batch_size // NUM_MINIBATCHES
        order = np.arange(batch_size)
        for _ in range(UPDATE_EPOCHS):
            np.random.default_rng(len(losses)).shuffle(order)
            for start_i in range(0, batch_size, minibatch_size):
                mb = order[start_i:start_i + minibatch_size]
                w = b_valid[mb]
                n = w.sum().clamp(min=1.0)
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions[mb])
                ratio = (newlogprob - b_logprobs[mb]).exp()
                mb_adv = b_advantages[mb]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - CLIP_COEF, 1 + CLIP_COEF))
                pg_loss = (pg_loss * w).sum() / n
                newvalue = newvalue.view(-1)
                v_clipped = b_values[mb] + (newvalue - b_values[mb]).clamp(-CLIP_COEF, CLIP_COEF)
                v_loss = torch.max((newvalue - b_returns[mb]) ** 2, (v_clipped - b_returns[mb]) ** 2)
                v_loss = 0.5 * (v_loss * w).sum() / n
                entropy_loss = (entropy * w).sum() / n
                loss = pg_loss - ENT_COEF * entropy_loss + VF_COEF * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), MAX_GRAD_NORM)
                optimizer.step()
                losses.append((pg_loss.item(), v_loss.item(), entropy_loss.item()))
    envs.close()

    assert np.all(np.isfinite(losses)) and len(losses) == NUM_UPDATES * UPDATE_EPOCHS * NUM_MINIBATCHES
    # 192 steps per env, an episode every EPISODE_FRAMES + 1 (the reset step): 4 episodes each
    assert len(episode_returns) == NUM_ENVS * (NUM_STEPS * NUM_UPDATES // (EPISODE_FRAMES + 1))
    assert all(length == EPISODE_FRAMES for length in episode_lengths)
    assert all(np.isfinite(r) and r < 0 for r in episode_returns)  # rewards are -variance
    assert float(valid.mean()) < 1.0  # the reset steps were seen and masked
    assert time.perf_counter() - start < 60

"""The algorithm name table shared by ``astrogym train`` and checkpoint loading (rl-baselines3-zoo style).

Names are lower-case with underscores (``ppo``, ``maskable_ppo``); classes are imported only when
asked for, so ``import astrogym.agents`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

from astrogym.envs.common.imports import import_path


@dataclass(frozen=True)
class Algorithm:
    """One trainable algorithm: where its class lives and how it learns."""

    name: str
    class_path: str  # "module:Class"
    off_policy: bool  # has a replay buffer worth checkpointing
    recurrent: bool = False  # carries an LSTM state between steps
    masked: bool = False  # takes ``action_masks`` in predict
    action_spaces: tuple[str, ...] = ("Box", "Discrete", "MultiDiscrete", "MultiBinary")
    # Not an SB3 algorithm: ``astrogym train`` hands the run folder to this "module:function(run_dir, config,
    # resume, progress, command)" instead of SB3's learn loop, and its policy files (``model{suffix}``,
    # ``best_model{suffix}``) load with ``loader`` ("module:function(path, env)"). class_path then names the
    # settings class whose constructor keywords are the hyperparameters.
    trainer: str | None = None
    loader: str | None = None
    suffix: str = ".zip"

    def supports(self, space) -> bool:
        """Whether the algorithm takes this action space (SB3 asserts it deep inside the constructor)."""
        return type(space).__name__ in self.action_spaces

    def load_class(self) -> type:
        return import_path(self.class_path)


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("ppo", "stable_baselines3:PPO", off_policy=False),
    Algorithm("a2c", "stable_baselines3:A2C", off_policy=False),
    Algorithm("sac", "stable_baselines3:SAC", off_policy=True, action_spaces=("Box",)),
    Algorithm("td3", "stable_baselines3:TD3", off_policy=True, action_spaces=("Box",)),
    Algorithm("maskable_ppo", "sb3_contrib:MaskablePPO", off_policy=False, masked=True,
              action_spaces=("Discrete", "MultiDiscrete", "MultiBinary")),
    Algorithm("recurrent_ppo", "sb3_contrib:RecurrentPPO", off_policy=False, recurrent=True),
    Algorithm("po4ao", "astrogym.agents.adaptive_optics.model_based:PO4AOSettings", off_policy=False,
              action_spaces=("Box",), trainer="astrogym.experiments.model_based_ao:train_run",
              loader="astrogym.agents.adaptive_optics.model_based:load_policy_file", suffix=".pt"),
)}


def get_algorithm(name: str) -> Algorithm:
    """The table entry for ``name`` (case-insensitive; ``-`` and ``_`` alike)."""
    key = str(name).lower().replace("-", "_")
    if key not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; allowed: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[key]


def algorithm_of_policy_class(policy_class: type) -> Algorithm:
    """Which algorithm a saved policy class belongs to (the most specific match wins)."""
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy

    for base, name in ((MaskableActorCriticPolicy, "maskable_ppo"), (RecurrentActorCriticPolicy, "recurrent_ppo"),
                       (SACPolicy, "sac"), (TD3Policy, "td3"), (ActorCriticPolicy, "ppo")):
        if isinstance(policy_class, type) and issubclass(policy_class, base):
            return ALGORITHMS[name]
    raise ValueError(f"policy class {getattr(policy_class, '__name__', policy_class)!r} belongs to none of "
                     f"{', '.join(ALGORITHMS)}")

"""The base of astrogym's native vector environments: N copies, one compiled call per step.

A native vector env (``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")``)
keeps every copy's state in stacked arrays and steps all copies with one numba call, so a step
costs one Python call whatever N is. Resets are rare (one per episode) and run the single env's
own ``reset`` for the copies that need one, so episode draws, options and seeding are the single
env's by construction, and per copy the results are bit-identical to N single envs with the same
seeds (``SyncVectorEnv``; tested).

:class:`AstrogymVectorEnv` (a ``gymnasium.vector.VectorEnv``) does what all domains share:

* **Copies.** ``num_envs`` instances of the domain's single env (:attr:`AstrogymVectorEnv.envs`,
  built by :meth:`_make_copies`), used for resets, validation and rendering.
* **Seeding.** ``reset(seed=s)`` seeds copy ``i`` with ``s + i``, a list seeds each copy, ``None``
  leaves them random, as ``SyncVectorEnv`` does.
* **Autoreset.** ``autoreset_mode`` is Gymnasium's :class:`~gymnasium.vector.AutoresetMode`
  (``metadata["autoreset_mode"]``):

  - ``NEXT_STEP`` (the default, Gymnasium's): the step after a copy's episode ended resets it,
    ignoring its action, and returns the new episode's first observation with reward 0, not
    terminated, not truncated, and the reset's info;
  - ``SAME_STEP``: the ending step resets the copy at once and returns the new first observation;
    the last observation and info are ``info["final_obs"]`` / ``info["final_info"]`` (what
    stable-baselines3's ``VecEnv`` semantics need, see :mod:`astrogym.agents.vec_env`);
  - ``DISABLED``: the caller resets ended copies with ``reset(options={"reset_mask": mask})``;
    stepping one before that raises ``gymnasium.error.ResetNeeded``.
* **Infos.** Gymnasium's vector layout: ``info[key]`` an array over copies, ``info["_key"]`` which
  copies have it.
* **Errors.** A bad batch of actions raises before any copy moves, naming the copy.

Subclass API
------------
``env_class``: the single env class (class attribute).
:meth:`_load_copy`: after copy ``i``'s ``reset``, put its state into row ``i`` of the stacked arrays.
:meth:`_step_copies`: step the copies flagged ``active`` in one compiled call; returns rewards,
    terminated, truncated and the step info as arrays over all copies.
:meth:`_observations`: the stacked observation (the live buffer; the base copies it when ``copy``).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any, ClassVar

import gymnasium as gym
import numba
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

_MODES = {m.value: m for m in AutoresetMode}


def as_autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """``mode`` as an :class:`AutoresetMode` (the enum or its value, e.g. ``"NextStep"``)."""
    if isinstance(mode, AutoresetMode):
        return mode
    if isinstance(mode, str) and mode in _MODES:
        return _MODES[mode]
    raise ValueError(f"autoreset_mode={mode!r}; allowed {[m.value for m in AutoresetMode]} "
                     "(or gymnasium.vector.AutoresetMode members)")


class AstrogymVectorEnv(gym.vector.VectorEnv):
    """N copies of an astrogym env stepped by one compiled call (see the module docstring).

    Parameters
    ----------
    num_envs: number of copies, >= 1.
    autoreset_mode: an :class:`~gymnasium.vector.AutoresetMode` or its value (default ``NEXT_STEP``).
    copy: return a copy of the observation buffer (default); ``False`` returns the live buffer, which
        the next ``step`` overwrites.
    render_mode: as the single env's; ``render()`` returns a tuple of the copies' frames.
    parallel: spread the copies over numba's threads (``NUMBA_NUM_THREADS``); ``None`` (default) does so
        from :attr:`PARALLEL_FROM` copies on, where it pays. Threads wait for each other every step, so
        on a machine whose cores are busy with other work ``False`` is faster.
    kwargs: the single env's arguments (config fields), the same for every copy.

    Raises
    ------
    ValueError: ``num_envs`` below 1, an unknown autoreset mode, or what the single env raises.
    TypeError: ``num_envs`` not an integer.
    """

    env_class: ClassVar[type[gym.Env]]
    PARALLEL_FROM: ClassVar[int] = 64  # copies from which numba's threads pay for their start and barrier
    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["rgb_array"]}

    def __init__(self, num_envs: int = 1, *, autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 copy: bool = True, render_mode: str | None = None, parallel: bool | None = None, **kwargs: Any):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise TypeError(f"num_envs must be an integer >= 1, got {type(num_envs).__name__}")
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs}; allowed >= 1")
        self.num_envs = int(num_envs)
        self.autoreset_mode = as_autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.copy = bool(copy)
        self.parallel = (self.num_envs >= self.PARALLEL_FROM and numba.get_num_threads() > 1) if parallel is None \
            else bool(parallel)
        self.render_mode = render_mode
        self.envs = self._make_copies(self.num_envs, render_mode, kwargs)
        first = self.envs[0]
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, self.num_envs)
        self.action_space = batch_space(first.action_space, self.num_envs)
        self.config = getattr(first, "config", None)
        self._ended = np.zeros(self.num_envs, np.bool_)  # the copy's episode ended on the last step
        self._everyone = np.ones(self.num_envs, np.bool_)
        self._has_reset = False

    # -- construction (subclasses may share expensive pieces between copies) ---------------------------
    def _make_copies(self, n: int, render_mode: str | None, kwargs: dict) -> list[gym.Env]:
        return [self.env_class(render_mode=render_mode, **kwargs) for _ in range(n)]

    # -- subclass hooks ----------------------------------------------------------------------------------
    def _load_copy(self, i: int) -> None:
        """Copy ``i`` was just reset: load its state into row ``i`` of the stacked arrays."""
        raise NotImplementedError

    def _step_copies(self, actions: Any, active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step the copies where ``active`` in one compiled call; the others must not change.

        Returns ``(rewards float64, terminated bool, truncated bool, info)``, each over all copies, ``info``
        a dict of fresh arrays the caller may keep; inactive copies are neither terminated nor truncated
        (their rewards and info values are ignored). Raises before
        changing anything when an active copy's action is bad.
        """
        raise NotImplementedError

    def _observations(self) -> Any:
        """The live stacked observation buffer."""
        raise NotImplementedError

    # -- Gymnasium API -----------------------------------------------------------------------------------
    def _seeds(self, seed: int | list | None) -> list:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed is a list of {len(seeds)}; it needs one per copy (num_envs={self.num_envs})")
        return seeds

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Reset every copy (or those in ``options["reset_mask"]``); ``options`` are the single env's.

        Returns the stacked first observations and the copies' reset infos in Gymnasium's vector layout.
        """
        seeds = self._seeds(seed)
        options = dict(options) if options else {}
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(self.num_envs, np.bool_)
        else:
            if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},)")
            if not mask.any():
                raise ValueError("options['reset_mask'] selects no copy; at least one must be True")
            if not self._has_reset and not mask.all():
                raise ValueError("the first reset must reset every copy (reset_mask all True, or no mask)")
        super().reset(seed=None if isinstance(seed, list) else seed)
        infos: dict = {}
        for i in np.flatnonzero(mask):
            _, info = self.envs[i].reset(seed=seeds[i], options=options or None)
            self._load_copy(int(i))
            infos = self._add_info(infos, info, int(i))
        self._ended[mask] = False
        self._has_reset = True
        return self._returned_observations(), infos

    def step(self, actions):
        """Step every copy with ``actions`` (a batch of the single action space) in one compiled call."""
        if not self._has_reset:
            raise gym.error.ResetNeeded(f"{type(self).__name__}.step() before reset(): call reset() first")
        mode = self.autoreset_mode
        ended = self._ended
        if mode is AutoresetMode.DISABLED and ended.any():
            raise gym.error.ResetNeeded(
                f"copies {np.flatnonzero(ended).tolist()} ended their episode; with autoreset_mode=DISABLED reset "
                "them first: reset(options={'reset_mask': mask})")
        active = ~ended if mode is AutoresetMode.NEXT_STEP else self._everyone
        rewards, terminated, truncated, step_info = self._step_copies(actions, active)
        done = terminated | truncated  # False for inactive copies (the _step_copies contract)
        # which copies report this step's info at the top level: with SAME_STEP an ended copy reports its
        # new episode's reset info there (and this step's under "final_info"), as SyncVectorEnv does
        shown = active & ~done if mode is AutoresetMode.SAME_STEP else active
        infos: dict = {}
        if shown.any():
            everyone = shown.all()
            for key, values in step_info.items():
                if not everyone:  # Gymnasium's layout: absent entries are zeros, flagged False
                    values = values.copy()  # (SAME_STEP's final_info still reads the step's own values)
                    values[~shown] = 0
                infos[key], infos[f"_{key}"] = values, shown.copy()
        if mode is AutoresetMode.NEXT_STEP:
            for i in np.flatnonzero(ended):
                _, info = self.envs[i].reset()
                self._load_copy(int(i))
                rewards[i] = 0.0
                infos = self._add_info(infos, info, int(i))
        if mode is AutoresetMode.SAME_STEP and done.any():
            obs = self._observations()
            for i in np.flatnonzero(done):
                final_info = {k: _item(v[i]) for k, v in step_info.items()}
                infos = self._add_info(infos, {"final_obs": deepcopy(_row(obs, i)), "final_info": final_info},
                                       int(i))
            for i in np.flatnonzero(done):
                _, info = self.envs[i].reset()
                self._load_copy(int(i))
                infos = self._add_info(infos, info, int(i))
            self._ended[:] = False
        else:
            self._ended = done
        return self._returned_observations(), rewards, terminated, truncated, infos

    def _returned_observations(self) -> Any:
        obs = self._observations()
        if not self.copy:
            return obs
        return {k: v.copy() for k, v in obs.items()} if isinstance(obs, dict) else obs.copy()

    def render(self) -> tuple | None:
        """The copies' frames (``render_mode="rgb_array"``), a tuple in copy order."""
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()


def _item(value: Any) -> Any:
    """A scalar entry as the Python number a single env's info holds (so infos batch to the same dtypes)."""
    return value.item() if isinstance(value, np.generic) else value


def _row(obs: Any, i: int) -> Any:
    """Copy ``i``'s observation from a stacked (array or dict of arrays) observation."""
    if isinstance(obs, dict):
        return {k: v[i] for k, v in obs.items()}
    return obs[i]

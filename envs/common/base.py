"""The Gymnasium base class of every astrogym environment: the parts of the contract all domains share.

:class:`AstrogymEnv` (a ``gymnasium.Env``) does four things the same way in every domain:

* **Config.** ``config=`` (an instance of the domain's :class:`~astrogym.envs.common.config.EnvConfig`
  subclass, a dict, or ``None``) overridden by keyword arguments, validated by
  :meth:`EnvConfig.from_kwargs`: unknown keys and out-of-range values raise ``ValueError``, wrong
  types ``TypeError``. The result is :attr:`AstrogymEnv.config`.
* **Render mode.** ``None`` or one of ``metadata["render_modes"]``; anything else raises ``ValueError``
  naming the allowed modes. ``"human"`` is refused too: no astrogym env opens a window (render
  ``"rgb_array"`` frames and show them). Through ``gym.make``, Gymnasium itself turns
  ``render_mode="human"`` into its ``HumanRendering`` wrapper around ``"rgb_array"``.
* **Reset options.** ``options`` is ``None`` or a dict whose keys are in :attr:`AstrogymEnv.RESET_OPTIONS`;
  another type raises ``TypeError``, an unknown key ``ValueError`` naming it and the allowed ones.
* **Episode lifecycle.** ``step`` before the first ``reset``, or after the episode ended (a step returned
  ``terminated`` or ``truncated``), raises ``gymnasium.error.ResetNeeded``.

Subclass API
------------
``config_class``: the domain's config class (class attribute).
``RESET_OPTIONS``: the names ``reset(options=...)`` accepts (class attribute).
``metadata``: Gymnasium's, with ``"render_modes"``.
``super().__init__(render_mode, config, **kwargs)``: sets :attr:`config` and :attr:`render_mode`; the
    env then needs a reset. Override :meth:`_build_config` to post-process the config.
:meth:`_reset_options`: the validated options of a ``reset`` call, as a new dict.
:meth:`_start_episode` / :meth:`_end_episode`: ``reset`` calls the first, ``step`` the second when the
    episode terminates or is truncated.
``if self._needs_reset: raise self._reset_needed("step()")``: the guard at the top of ``step`` (an
    attribute test, so the hot path pays nothing more).
:attr:`needs_reset`: whether ``step`` would raise ``ResetNeeded`` now (public, read-only).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import gymnasium as gym

from astrogym.envs.common.config import EnvConfig


class AstrogymEnv(gym.Env):
    """Base of the astrogym environments: config, render mode, reset options, episode lifecycle.

    Parameters
    ----------
    render_mode: ``None`` or one of ``metadata["render_modes"]``.
    config: a :attr:`config_class` instance, a dict of its fields, or ``None`` (the defaults).
    kwargs: fields of :attr:`config_class`, overriding ``config``.

    Raises
    ------
    ValueError: an unknown config key or an out-of-range value; a render mode the env does not have.
    TypeError: a config value of the wrong type, or ``config`` of the wrong type.
    """

    config_class: ClassVar[type[EnvConfig]] = EnvConfig
    RESET_OPTIONS: ClassVar[tuple[str, ...]] = ()
    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, render_mode: str | None = None, config: EnvConfig | Mapping[str, Any] | None = None,
                 **kwargs: Any):
        self.config = self._build_config(config, kwargs)
        self.render_mode = self._check_render_mode(render_mode)
        self._needs_reset = True
        self._has_reset = False

    # -- construction ------------------------------------------------------------------------------------
    def _build_config(self, config: EnvConfig | Mapping[str, Any] | None, kwargs: dict[str, Any]) -> EnvConfig:
        """The validated config from ``config=`` and keyword arguments; subclasses may post-process it."""
        return self.config_class.from_kwargs(config, **kwargs)

    @classmethod
    def _check_render_mode(cls, render_mode: str | None) -> str | None:
        modes = list(cls.metadata.get("render_modes", []))
        if render_mode is not None and render_mode not in modes:
            hint = " (no astrogym env opens a window: render 'rgb_array' frames and show them)" \
                if render_mode == "human" else ""
            raise ValueError(f"render_mode={render_mode!r} is not supported by {cls.__name__}; allowed None or "
                             f"{modes}{hint}")
        return render_mode

    # -- reset options -----------------------------------------------------------------------------------
    def _reset_options(self, options: dict | None) -> dict:
        """A new dict of ``reset``'s options, checked against :attr:`RESET_OPTIONS`.

        Raises
        ------
        TypeError: ``options`` is neither a dict nor ``None``.
        ValueError: an option name is not in :attr:`RESET_OPTIONS` (the message lists the allowed ones).
        """
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
        unknown = sorted(set(options) - set(self.RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown} for {type(self).__name__}; allowed "
                             f"{list(self.RESET_OPTIONS)}")
        return dict(options)

    # -- episode lifecycle -------------------------------------------------------------------------------
    def _start_episode(self) -> None:
        """Mark the episode as running (``reset`` calls it once the new episode is set up)."""
        self._needs_reset = False
        self._has_reset = True

    def _end_episode(self) -> None:
        """Mark the episode as over: the next ``step`` raises ``ResetNeeded`` until ``reset``."""
        self._needs_reset = True

    def _reset_needed(self, call: str = "step()") -> gym.error.ResetNeeded:
        """The error ``call`` raises before the first reset or after the episode ended (returned, not raised)."""
        name = type(self).__name__
        if not self._has_reset:
            return gym.error.ResetNeeded(f"{name}.{call} before reset(): call reset() first")
        return gym.error.ResetNeeded(f"{name}.{call} after the episode ended (terminated or truncated): "
                                     "call reset() first")

    @property
    def needs_reset(self) -> bool:
        """True before the first ``reset`` and after the episode ended: ``step`` would raise ``ResetNeeded``."""
        return self._needs_reset

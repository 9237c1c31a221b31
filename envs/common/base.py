"""The Gymnasium base class of every astrogym environment: the parts of the contract all domains share.

:class:`AstrogymEnv` (a ``gymnasium.Env``) does four things the same way in every domain:

* **Config.** ``config=`` (an instance of the domain's :class:`~astrogym.envs.common.config.EnvConfig`
  subclass, a dict, or ``None``) overridden by keyword arguments, validated by
  :meth:`EnvConfig.from_kwargs`: unknown keys and out-of-range values raise ``ValueError``, wrong
  types ``TypeError``. The result is :attr:`AstrogymEnv.config`.
* **Render mode.** ``None`` or one of ``metadata["render_modes"]`` (``"rgb_array"`` and ``"human"``);
  anything else raises ``ValueError`` naming the allowed modes. ``"rgb_array"``: :meth:`render`
  returns the env's frame. ``"human"``: ``reset`` and ``step`` show the frame in a matplotlib window
  (:class:`~astrogym.envs.common.rendering.FrameViewer`; no pygame needed) and :meth:`render`
  returns None; in a session without an interactive matplotlib backend it raises ``ValueError``
  at construction saying so, instead of failing later, and such a session's instances list only
  ``"rgb_array"`` in ``metadata["render_modes"]`` (the class lists both, so ``gym.make`` hands
  ``"human"`` to the env rather than to Gymnasium's pygame wrapper).
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
:meth:`_render_frame`: the env's picture as uint8 ``(H, W, 3)``; :meth:`render` does the rest. ``reset``
    and ``step`` end with ``if self._human: self.render()`` (one attribute test on the hot path).
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
from astrogym.envs.common.rendering import FrameViewer, display_available, interactive_backend


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
        self._human = self.render_mode == "human"
        if "human" in self.metadata.get("render_modes", []) and not (self._human or display_available()):
            # this instance's modes are what this session can do: a headless one cannot open windows, so
            # tools that try every listed mode (Gymnasium's check_env) skip "human" here
            self.metadata = {**self.metadata,
                             "render_modes": [m for m in self.metadata["render_modes"] if m != "human"]}
        self._viewer = None
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
            raise ValueError(f"render_mode={render_mode!r} is not supported by {cls.__name__}; allowed None or "
                             f"{modes}")
        if render_mode == "human" and interactive_backend() is None:
            import matplotlib

            raise ValueError(f"render_mode='human' needs an interactive matplotlib backend to open a window; this "
                             f"session's backend is {matplotlib.get_backend()!r} (no display). Set MPLBACKEND "
                             "(e.g. TkAgg, QtAgg) on a desktop, or use render_mode='rgb_array' and save the frames")
        return render_mode

    # -- rendering ---------------------------------------------------------------------------------------
    def _render_frame(self):
        """The env's picture now, uint8 ``(H, W, 3)`` (subclasses implement it)."""
        raise NotImplementedError

    def render(self):
        """``"rgb_array"``: the frame, uint8 ``(H, W, 3)``; ``"human"``: shows it and returns None; ``None``: None."""
        if self.render_mode is None:
            return None
        frame = self._render_frame()
        if not self._human:
            return frame
        if self._viewer is None:
            self._viewer = FrameViewer(type(self).__name__, self.metadata.get("render_fps", 30))
        self._viewer.show(frame)
        return None

    def close(self):
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None
        super().close()

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

"""Property-based fuzzing of every config field and reset option of every env class.

Properties: a value of the wrong type, outside the field's range or non-finite raises
``ValueError``/``TypeError`` naming the field (its allowed range or choices come with it); a
combination of in-range values either raises such an error (a cross-field rule, naming a field)
or builds an env whose observations and rewards stay finite and inside the spaces.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, strategies as st

import astrogym  # noqa: F401  (registers the ids)
from astrogym.envs import ENV_SPECS
from checkers import assert_finite_inside

ENTRY_POINTS = {
    "interferometer": "astrogym.envs.interferometer.env:InterferometerLockEnv",
    "adaptive_optics": "astrogym.envs.adaptive_optics.env:AdaptiveOpticsEnv",
    "scheduling": "astrogym.envs.scheduling.env:TelescopeSchedulingEnv",
    "network": "astrogym.envs.network.env:TelescopeNetworkEnv",
}
ENV_CLASSES = {name: gym.envs.registration.load_env_creator(ep) for name, ep in ENTRY_POINTS.items()}
# fast settings under the fuzzed values (the physics code is the same at any size)
BASE = {"interferometer": {"episode_length_s": 2.0}, "adaptive_optics": {"n_subapertures": 8, "episode_frames": 20},
        "scheduling": {"n_targets": 12}, "network": {"n_targets": 12, "too_pool": 16}}
# in-range values above these would only make the test slow (they are checked for validation, not run)
CHEAP_HIGH = {"n_subapertures": 12, "pixels_per_subaperture": 6, "history": 8, "history_length": 256,
              "sample_rate_hz": 4096.0, "loop_rate_hz": 1e5, "n_targets": 60, "max_targets": 60, "n_nights": 2,
              "catalogue_pool": 4, "k_neighbors": 16, "episode_frames": 20, "psf_every": 5, "episode_length_s": 2.0,
              "date_range_days": 30, "n_targets_range": 60, "n_modes": 20,
              "too_pool": 64, "max_toos": 32}
WRONG_TYPES = [None, "1.0", "", b"1", [1.0], {"a": 1}, complex(1, 1), True, object()]


def _fields(name: str):
    return [f for f in dataclasses.fields(ENV_CLASSES[name].config_class) if "kind" in f.metadata]


def _in_range(f, cheap: bool):
    """A strategy for valid values of field ``f`` (bounded by :data:`CHEAP_HIGH` when ``cheap``)."""
    m = f.metadata
    if m["choices"] is not None:
        return st.sampled_from(m["choices"])
    low = -1e6 if m["low"] is None else m["low"]
    high = 1e6 if m["high"] is None else m["high"]
    if cheap and f.name in CHEAP_HIGH:
        high = min(high, CHEAP_HIGH[f.name])
    if m["kind"] == "int":
        return st.integers(int(math.ceil(low)), int(high))
    number = st.one_of(st.sampled_from([low, high]), st.floats(low, high, allow_nan=False))
    if low > 0 and high / low > 1e3:  # wide positive ranges: log-uniform, so small values get drawn too
        number = st.one_of(number, st.floats(math.log(low), math.log(high)).map(math.exp).filter(
            lambda v: low <= v <= high))
    if m["kind"] == "optional":
        return st.one_of(st.none(), number)
    if m["kind"] == "range":
        return st.one_of(st.none(), st.tuples(number, number).map(sorted).map(tuple))
    if m["kind"] == "tuple":
        return st.lists(number, min_size=1, max_size=3).map(tuple)
    return number


def _invalid(f):
    """A strategy for values of ``f`` that must be refused: wrong types, beyond the range, non-finite."""
    m = f.metadata
    bad = [st.sampled_from(WRONG_TYPES)] if m["kind"] != "optional" else [st.sampled_from(WRONG_TYPES[1:])]
    if m["choices"] is not None:
        return st.one_of(*bad, st.text(max_size=5).filter(lambda v: v not in m["choices"]))
    numbers = [st.sampled_from([math.nan, math.inf, -math.inf])]
    if m["low"] is not None:
        numbers.append(st.sampled_from([m["low"] - 1e-9 * max(1.0, abs(m["low"])), m["low"] - 1.0, -1e300]))
    if m["high"] is not None:
        numbers.append(st.sampled_from([m["high"] + 1e-9 * max(1.0, abs(m["high"])), m["high"] + 1.0, 1e300]))
    if m["kind"] == "int":
        numbers.append(st.sampled_from([1.5, 2.25]))
    value = st.one_of(*numbers)
    if m["kind"] == "range":
        return st.one_of(*bad[1:], value.map(lambda v: (v, v)), st.just((1.0,)), st.just((2.0, 1.0)))
    if m["kind"] == "tuple":
        return st.one_of(st.sampled_from(["abc", 3.0, None]), value.map(lambda v: (v,)))
    return st.one_of(*bad, value)


def _assert_names_a_field(message: str, names) -> None:
    assert any(n in message for n in names), f"the error names none of {sorted(names)}: {message!r}"
    assert "Traceback" not in message and "nopython" not in message


@pytest.mark.parametrize("name", ENV_CLASSES)
@given(data=st.data())
def test_invalid_values_are_refused_naming_the_field(name, data):
    config_class = ENV_CLASSES[name].config_class
    field = data.draw(st.sampled_from(_fields(name)), label="field")
    value = data.draw(_invalid(field), label="value")
    with pytest.raises((ValueError, TypeError)) as info:
        config_class.from_kwargs(BASE[name], **{field.name: value})
    _assert_names_a_field(str(info.value), [field.name])


@pytest.mark.parametrize("name", ENV_CLASSES)
@given(data=st.data())
def test_valid_values_validate_and_describe_themselves(name, data):
    """Every in-range value of one field is accepted (the documented range is the real one)."""
    config_class = ENV_CLASSES[name].config_class
    field = data.draw(st.sampled_from(_fields(name)), label="field")
    value = data.draw(_in_range(field, cheap=False), label="value")
    try:
        config = config_class.from_kwargs(BASE[name], **{field.name: value})
    except ValueError as exc:  # only a cross-field rule may refuse an in-range value, naming the field
        _assert_names_a_field(str(exc), [field.name])
    else:
        assert dict((row[0], row[1]) for row in config_class.describe(config))[field.name] == getattr(config,
                                                                                                        field.name)


@pytest.mark.parametrize("name", ENV_CLASSES)
@given(data=st.data())
def test_in_range_configs_give_finite_episodes_or_name_the_conflict(name, data):
    fields = data.draw(st.lists(st.sampled_from(_fields(name)), min_size=1, max_size=6, unique_by=lambda f: f.name),
                       label="fields")
    kwargs = dict(BASE[name])
    kwargs.update({f.name: data.draw(_in_range(f, cheap=True), label=f.name) for f in fields})
    try:
        env = ENV_CLASSES[name](**kwargs)
    except (ValueError, TypeError) as exc:
        _assert_names_a_field(str(exc), kwargs)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a warning is fine; a NaN in the output is not
        obs, _ = env.reset(seed=0)
        assert_finite_inside(env, obs)
        space = env.action_space
        action = space.n - 1 if isinstance(space, gym.spaces.Discrete) else np.zeros(space.shape, np.float32)
        for _ in range(4):
            obs, reward, terminated, truncated, _ = env.step(action)
            assert_finite_inside(env, obs, reward)
            if terminated or truncated:
                break


@pytest.mark.parametrize("env_id", [s.id for s in ENV_SPECS])
@given(data=st.data())
def test_reset_options_are_validated_like_config_fields(env_id, data):
    spec = next(s for s in ENV_SPECS if s.id == env_id)
    name = next(k for k, ep in ENTRY_POINTS.items() if ep == spec.entry_point)
    env = _cached_env(env_id, name)
    options = [o for o in env.RESET_OPTIONS if o in {f.name for f in _fields(name)}]
    if not options:
        pytest.skip(f"{env_id} has no config-valued reset options")
    option = data.draw(st.sampled_from(options), label="option")
    field = next(f for f in _fields(name) if f.name == option)
    valid = data.draw(st.booleans(), label="valid")
    value = data.draw(_in_range(field, cheap=True) if valid else _invalid(field), label="value")
    try:
        obs, _ = env.reset(seed=0, options={option: value})
    except (ValueError, TypeError) as exc:
        _assert_names_a_field(str(exc), [option])
    else:
        assert_finite_inside(env, obs)


_ENV_CACHE: dict[str, gym.Env] = {}


def _cached_env(env_id: str, name: str):
    if env_id not in _ENV_CACHE:
        _ENV_CACHE[env_id] = gym.make(env_id, disable_env_checker=True, **BASE[name]).unwrapped
    return _ENV_CACHE[env_id]


def test_a_geometry_without_lit_subapertures_names_its_fields():
    """Found by the endpoint search: 4 subapertures, all required fully lit (numpy's reduction error before)."""
    with pytest.raises(ValueError, match=r"only 0 subaperture\(s\) are lit to valid_subaperture_fraction=1 with "
                                         r"n_subapertures=4 and central_obstruction=0.14"):
        gym.make("astrogym/AdaptiveOptics-v0", n_subapertures=4, valid_subaperture_fraction=1.0)

"""Property-based fuzzing of ``step`` on every registered id: actions of every dtype, shape and value.

The property, for any action: either ``step`` raises ``ValueError``/``TypeError`` whose message
names the action and what is allowed, and the env then continues exactly as if the bad action
had never been sent (bad input loses nothing); or it returns finite observations inside the
observation space and a finite reward. Never an error from numba, numpy or Python internals,
never a silently reinterpreted value (complex parts dropped, strings parsed).
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, strategies as st

import astrogym  # noqa: F401  (registers the ids)
from astrogym.envs import ENV_SPECS
from checkers import assert_finite_inside

# small, fast configurations of each env class (the fuzzed code is the same at any size)
FAST = {
    "astrogym.envs.interferometer.env:InterferometerLockEnv": {},
    "astrogym.envs.adaptive_optics.env:AdaptiveOpticsEnv": {"n_subapertures": 8, "episode_frames": 50},
    "astrogym.envs.scheduling.env:TelescopeSchedulingEnv": {"n_targets": 12},
    "astrogym.envs.network.env:TelescopeNetworkEnv": {"n_targets": 12, "too_pool": 16},
}
IDS = [spec.id for spec in ENV_SPECS]
_ENVS: dict[str, tuple[gym.Env, gym.Env]] = {}

REAL_DTYPES = ["float16", "float32", "float64", "longdouble", ">f4", ">f8", "<f2", "int8", "int16", "int32",
               "int64", "uint8", "uint16", "uint64", ">i4"]
OTHER_DTYPES = ["bool", "complex64", "complex128", "<U3", "S2", "object", "datetime64[s]"]
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 1.0 + 1e-6, -1.0 - 1e-6, 2.0, 1e-310, 1e300, -1e300, np.nan, np.inf, -np.inf]
# words an error about an action must use to say what is allowed
ALLOWED_WORDS = ("shape", "[-1, 1]", "real numbers", "integer", "finite", "[0, ")


def _envs(env_id: str) -> tuple[gym.Env, gym.Env]:
    """(env under test, reference env) for ``env_id``, built once per session."""
    if env_id not in _ENVS:
        spec = next(s for s in ENV_SPECS if s.id == env_id)
        _ENVS[env_id] = tuple(gym.make(env_id, **FAST[spec.entry_point]) for _ in range(2))
    return _ENVS[env_id]


def _safe_action(space: gym.Space):
    """An action that is always accepted: zeros, or the scheduling env's 'wait'."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n - 1)
    return np.zeros(space.shape, dtype=space.dtype)


def _assert_same(a, b) -> None:
    if isinstance(a, dict):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    else:
        np.testing.assert_array_equal(a, b)


def check_action(env_id: str, action) -> None:
    env, reference = _envs(env_id)
    safe = _safe_action(env.action_space)
    env.reset(seed=7)
    reference.reset(seed=7)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gymnasium's passive checker warns on odd dtypes: not our error
            obs, reward, terminated, truncated, info = env.step(action)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert "nopython" not in message and "numba" not in message.lower(), f"numba internals leaked: {message}"
        assert "action" in message, f"the error does not name the action: {message!r}"
        assert any(w in message for w in ALLOWED_WORDS), f"the error does not say what is allowed: {message!r}"
        # nothing lost: the env continues exactly like one that never saw the bad action
        got = env.step(safe)
        want = reference.step(safe)
        _assert_same(got[0], want[0])
        assert got[1] == want[1]
    else:
        assert_finite_inside(env, obs, reward)


def _arrays(shape: tuple[int, ...]):
    """Arrays of ``shape`` (or a wrong shape) in any dtype, with special and extreme values."""
    values = st.one_of(st.sampled_from(SPECIAL), st.floats(-1.0, 1.0), st.floats(allow_nan=True, allow_infinity=True))
    shapes = st.sampled_from([shape, shape, shape, (), (1,), (2,), shape + (1,), (1,) + shape])

    @st.composite
    def build(draw):
        s = draw(shapes)
        dtype = draw(st.sampled_from(REAL_DTYPES + OTHER_DTYPES))
        fill = draw(st.lists(values, min_size=1, max_size=4))
        data = np.resize(np.array(fill, dtype=np.float64), s)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dtype.startswith(("<U", "S")):
                return data.astype(str).astype(dtype)
            if dtype == "object":
                return data.astype(object)
            if dtype.startswith("datetime"):
                return np.zeros(s, dtype=dtype)
            if dtype.startswith("complex"):
                return (data + 1j * draw(st.sampled_from([0.0, 0.5]))).astype(dtype)
            return data.astype(dtype)

    return build()


def _python_values(space: gym.Space):
    """Non-array inputs external code sends: lists, scalars, strings, None, dicts."""
    n = int(np.prod(space.shape)) if space.shape else 1
    return st.one_of(st.lists(st.floats(-1, 1), min_size=n, max_size=n), st.just(None), st.text(max_size=3),
                     st.floats(allow_nan=True), st.integers(-2**70, 2**70), st.booleans(), st.just({"a": 1}),
                     st.complex_numbers(max_magnitude=2.0), st.lists(st.lists(st.floats(-1, 1), max_size=2),
                                                                     max_size=2))


@pytest.mark.parametrize("env_id", IDS)
@given(data=st.data())
def test_any_action_is_accepted_inside_the_spaces_or_refused_naming_it(env_id, data):
    space = _envs(env_id)[0].action_space
    shape = space.shape if space.shape else ()
    action = data.draw(st.one_of(_arrays(shape), _python_values(space)), label="action")
    check_action(env_id, action)


# continuous action spaces only (the schedulers' Discrete actions take integers: checked above)
@pytest.mark.parametrize("env_id", [i for i in IDS if "Scheduling" not in i and "Network" not in i])
@pytest.mark.parametrize("dtype", REAL_DTYPES)
def test_every_real_dtype_means_the_same_as_float64(env_id, dtype):
    """float16, big-endian, long double, integers: the same step as the float64 of the same values."""
    env, reference = _envs(env_id)
    space = env.action_space
    value = np.full(space.shape, 0.5 if np.dtype(dtype).kind == "f" else 0.0)
    if np.dtype(dtype).kind in "iu":
        value.flat[0] = 1.0  # an integer action: one actuator (or the torque) at +1
    env.reset(seed=3)
    reference.reset(seed=3)
    got = env.step(value.astype(dtype))
    want = reference.step(value.astype(np.float64))
    _assert_same(got[0], want[0])
    assert got[1] == want[1]


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("bad", [np.complex128(0.5 + 0.5j), "0.5", True, None])
def test_values_without_a_real_meaning_are_type_errors(env_id, bad):
    space = _envs(env_id)[0].action_space
    action = bad if isinstance(space, gym.spaces.Discrete) or bad is None else np.full(space.shape, bad)
    env = _envs(env_id)[0]
    env.reset(seed=0)
    with pytest.raises(TypeError, match="action"):
        env.step(action)

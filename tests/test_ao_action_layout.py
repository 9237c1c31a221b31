"""The AO env's action layouts (grid, flat, modal): spaces, conversions, trajectories, dtypes, kernels."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import astrogym  # noqa: F401
from astrogym.envs.adaptive_optics import kernels, layouts
from astrogym.envs.adaptive_optics.atmosphere import von_karman_covariance
from astrogym.envs.adaptive_optics.config import AOConfig

SMALL = "astrogym/AdaptiveOpticsSmall-v0"
LAYOUTS = ("grid", "flat", "modal")


def _env(layout="grid", **kw):
    return gym.make(SMALL, action_layout=layout, disable_env_checker=True, **kw).unwrapped


@pytest.fixture(scope="module")
def envs():
    """One env per layout, for conversions (nothing here steps them)."""
    return {layout: _env(layout) for layout in LAYOUTS}


def _piston_free_grid(env, values):
    grid = np.zeros(env.system.controlled.shape)
    grid[env.system.controlled] = values - values.mean()
    return grid


def _rollout(env, actions, seed=7):
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for a in actions:
        out.append(env.step(a))
    return out


# -- spaces --------------------------------------------------------------------------------------------


def test_spaces_of_each_layout(envs):
    n_controlled = int(envs["grid"].system.controlled.sum())
    assert envs["grid"].action_space == gym.spaces.Box(-1, 1, (21, 21), np.float32)
    assert envs["flat"].action_space == gym.spaces.Box(-1, 1, (n_controlled,), np.float32)
    assert envs["modal"].action_space == gym.spaces.Box(-1, 1, (n_controlled - 1,), np.float32)
    assert envs["grid"].modal_basis is None and envs["flat"].modal_basis is None
    assert envs["modal"].modal_basis.shape == (n_controlled, n_controlled - 1)
    assert not envs["modal"].modal_basis.flags.writeable
    # the observation does not depend on the layout
    assert envs["grid"].observation_space == envs["flat"].observation_space == envs["modal"].observation_space
    first = [_env(layout).reset(seed=3)[0] for layout in LAYOUTS]
    np.testing.assert_array_equal(first[0], first[1])
    np.testing.assert_array_equal(first[0], first[2])


def test_grid_layout_conversions_mask_the_uncontrolled_actuators(envs):
    env = envs["grid"]
    g = np.random.default_rng(0).uniform(-1, 1, (21, 21))
    np.testing.assert_array_equal(env.action_to_grid(g), g * env.system.controlled)
    np.testing.assert_array_equal(env.grid_to_action(g), g * env.system.controlled)


# -- flat ------------------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=25)
@given(data=st.data())
def test_flat_round_trip_is_exact(envs, data):
    env = envs["flat"]
    controlled = env.system.controlled
    a = data.draw(arrays(np.float32, env.action_space.shape, elements=st.floats(-1, 1, width=32)))
    grid = env.action_to_grid(a)
    assert grid.dtype == np.float64 and grid.shape == (21, 21)
    np.testing.assert_array_equal(grid[controlled], a)
    np.testing.assert_array_equal(grid[~controlled], 0.0)
    np.testing.assert_array_equal(env.grid_to_action(grid), a)
    # the actuators in np.flatnonzero order
    np.testing.assert_array_equal(grid.reshape(-1)[np.flatnonzero(controlled)], a)


@pytest.mark.parametrize("kw, scale", [({}, 0.4), ({"action_penalty": 0.5, "action_out_of_range": "clip"}, 1.6),
                                       ({"loop_delay_frames": 2, "guide_star_magnitude": 12.0, "psf_every": 4}, 0.4)])
def test_flat_steps_bit_identically_to_the_grid(kw, scale):
    grid_env, flat_env = _env("grid", episode_frames=12, **kw), _env("flat", episode_frames=12, **kw)
    controlled = grid_env.system.controlled
    rng = np.random.default_rng(1)
    grids = []
    for k in range(12):
        g = np.zeros((21, 21), np.float32 if k % 2 else np.float64)
        g[controlled] = rng.uniform(-scale, scale, controlled.sum())
        grids.append(g)
    a = _rollout(grid_env, grids)
    b = _rollout(flat_env, [g[controlled] for g in grids])
    assert b[-1][3]  # truncated at the end, as the grid env
    for x, y in zip(a, b):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            if isinstance(u, np.ndarray):
                assert u.dtype == v.dtype and u.tobytes() == v.tobytes()
            else:
                assert u == v


# -- modal -----------------------------------------------------------------------------------------------


def _reference_covariance(env):
    """The von Karman covariance of the controlled actuators, from their positions (independent of layouts)."""
    cfg = env.config
    pos = np.argwhere(env.system.controlled) * cfg.subaperture_m
    r = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    return von_karman_covariance(r, cfg.r0_m, cfg.outer_scale_m)


def test_modal_basis_is_piston_free_orthogonal_kl_and_ordered(envs):
    env = envs["modal"]
    b = env.modal_basis
    n = b.shape[0]
    np.testing.assert_allclose(np.abs(b).max(axis=0), 1.0, rtol=1e-12)  # peak normalisation
    np.testing.assert_allclose(b.sum(axis=0), 0.0, atol=1e-10)  # piston-free
    gram = b.T @ b
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() < 1e-10 * np.diag(gram).min()  # orthogonal
    # Karhunen-Loeve: each unit mode is an eigenvector of the piston-projected covariance, by decreasing variance
    cov = _reference_covariance(env)
    p = np.eye(n) - 1.0 / n
    projected = p @ cov @ p
    u = b / np.linalg.norm(b, axis=0)
    variance = np.einsum("im,im->m", u, projected @ u)
    np.testing.assert_allclose(projected @ u, u * variance, atol=1e-9 * variance[0])
    assert np.all(np.diff(variance) <= 1e-9 * variance[0])
    np.testing.assert_allclose(layouts.modal_basis(env.config, env.system.controlled).variances, variance,
                               rtol=1e-9)
    # all eigenvalues of the projected covariance but piston's zero
    eig = np.sort(np.linalg.eigvalsh(projected))[::-1]
    np.testing.assert_allclose(variance, eig[:-1], rtol=1e-8, atol=1e-12 * eig[0])
    # modes 0 and 1 are tilts along x (columns) and y (rows), positive towards +x and +y
    idx = np.argwhere(env.system.controlled).astype(float)
    for mode, axis in ((0, 1), (1, 0)):
        ramp = idx[:, axis] - idx[:, axis].mean()
        assert np.corrcoef(b[:, mode], ramp)[0, 1] > 0.98  # KL tilt: a ramp with a little coma


def test_modal_basis_is_cached_per_system():
    a, b = _env("modal"), _env("modal", n_modes=5)
    assert np.shares_memory(a.modal_basis, b.modal_basis)
    np.testing.assert_array_equal(b.modal_basis, a.modal_basis[:, :5])
    c = _env("modal", outer_scale_m=10.0)  # another atmosphere, another basis
    assert not np.shares_memory(a.modal_basis, c.modal_basis)


@settings(deadline=None, max_examples=25)
@given(data=st.data())
def test_modal_round_trip_reproduces_piston_free_grids(envs, data):
    env = envs["modal"]
    n = int(env.system.controlled.sum())
    values = data.draw(arrays(np.float64, n, elements=st.floats(-1, 1)))
    g = _piston_free_grid(env, values)
    coeffs = env.grid_to_action(g)
    assert coeffs.shape == env.action_space.shape and coeffs.dtype == np.float64
    np.testing.assert_allclose(env.action_to_grid(coeffs), g, rtol=0, atol=1e-10)
    # and from the coefficients' side
    c = data.draw(arrays(np.float64, env.action_space.shape, elements=st.floats(-1, 1)))
    np.testing.assert_allclose(env.grid_to_action(env.action_to_grid(c)), c, rtol=0, atol=1e-10)


def test_modal_projects_piston_out(envs):
    env = envs["modal"]
    g = _piston_free_grid(env, np.random.default_rng(2).uniform(-1, 1, int(env.system.controlled.sum())))
    with_piston = g + 0.3 * env.system.controlled
    np.testing.assert_allclose(env.action_to_grid(env.grid_to_action(with_piston)), g, atol=1e-10)


def test_modal_steps_like_the_grid():
    kw = dict(episode_frames=15, action_penalty=0.2)
    grid_env, modal_env = _env("grid", **kw), _env("modal", **kw)
    rng = np.random.default_rng(3)
    n = int(grid_env.system.controlled.sum())
    grids, coeffs = [], []
    for _ in range(15):
        g = _piston_free_grid(grid_env, rng.uniform(-0.5, 0.5, n))
        c = modal_env.grid_to_action(g)
        shrink = min(1.0, 0.95 / np.abs(g).max(), 0.95 / np.abs(c).max())  # both within [-1, 1]
        grids.append(g * shrink)
        coeffs.append(c * shrink)
    a, b = _rollout(grid_env, grids), _rollout(modal_env, coeffs)
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_allclose(y[0], x[0], rtol=1e-5, atol=1e-4)  # float32 observations
        assert y[1] == pytest.approx(x[1], rel=1e-9)
        assert y[2:4] == x[2:4]
        assert y[4]["residual_rad2"] == pytest.approx(x[4]["residual_rad2"], rel=1e-9)
    np.testing.assert_allclose(modal_env.residual_phase_rad, grid_env.residual_phase_rad, rtol=0, atol=1e-9)


def test_n_modes_truncates_to_the_lowest_order_modes(envs):
    full = envs["modal"]
    env = _env("modal", n_modes=12)
    assert env.action_space.shape == (12,)
    np.testing.assert_array_equal(env.modal_basis, full.modal_basis[:, :12])
    g = _piston_free_grid(env, np.random.default_rng(4).uniform(-1, 1, int(env.system.controlled.sum())))
    fitted = env.action_to_grid(env.grid_to_action(g))
    # least squares: the residual is orthogonal to the 12 modes, and equals the full expansion's tail
    residual = (g - fitted)[env.system.controlled]
    assert np.abs(env.modal_basis.T @ residual).max() < 1e-10
    tail = full.grid_to_action(g)
    tail[:12] = 0.0
    np.testing.assert_allclose(full.action_to_grid(tail), g - fitted, atol=1e-10)
    assert _env("modal", n_modes=0).action_space.shape == full.action_space.shape


@pytest.mark.parametrize("kw, error, match", [
    ({"action_layout": "modal", "n_modes": -1}, ValueError, r"AOConfig\.n_modes=-1 is out of range; allowed \[0, "),
    ({"action_layout": "modal", "n_modes": 373}, ValueError, r"AOConfig\.n_modes=373 is out of range; allowed "
                                                             r"\[0, 372\]"),
    ({"action_layout": "modal", "n_modes": 10**6}, ValueError, r"AOConfig\.n_modes=1000000 is out of range"),
    ({"action_layout": "modal", "n_modes": 2.5}, TypeError, r"AOConfig\.n_modes must be an integer"),
    ({"action_layout": "modal", "n_modes": None}, TypeError, r"AOConfig\.n_modes must be an integer"),  # 0 = all
    ({"action_layout": "flat", "n_modes": 5}, ValueError, r"AOConfig\.n_modes=5 applies to action_layout='modal'"),
    ({"action_layout": "pixels"}, ValueError, r"action_layout='pixels' is not allowed; choose one of \['grid', "
                                              r"'flat', 'modal'\]"),
])
def test_invalid_layout_config_raises(kw, error, match):
    with pytest.raises(error, match=match):
        gym.make(SMALL, **kw)


def test_modal_range_check_is_on_the_coefficients():
    env = _env("modal")
    env.reset(seed=0)
    # a coefficient of 1 moves the mode's largest actuator by action_scale_rad: no error although the
    # sum of several modes moves some actuators by more than 1
    coeffs = np.ones(env.action_space.shape)
    assert np.abs(env.action_to_grid(coeffs)).max() > 1.0
    env.step(coeffs)
    with pytest.raises(ValueError, match=r"outside the action space \[-1, 1\]"):
        env.step(np.full(env.action_space.shape, 1.5))
    bad = np.zeros(env.action_space.shape)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="must be finite"):
        env.step(bad)
    # clip: coefficients beyond 1 act as 1
    clip_a, clip_b = _env("modal", action_out_of_range="clip"), _env("modal", action_out_of_range="clip")
    big = np.zeros(clip_a.action_space.shape)
    big[[0, 5]] = [4.0, -2.0]
    clip_a.reset(seed=1)
    clip_b.reset(seed=1)
    np.testing.assert_array_equal(clip_a.step(big)[0], clip_b.step(np.clip(big, -1, 1))[0])


def test_flat_range_check_wording():
    env = _env("flat")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action has entries up to 2, outside the action space \[-1, 1\]"):
        env.step(np.full(env.action_space.shape, 2.0))
    with pytest.raises(ValueError, match=r"action must have shape \(373,\), got shape \(21, 21\)"):
        env.step(np.zeros((21, 21)))


def test_modal_env_pickles_and_continues_identically():
    env = _env("modal", n_modes=40)
    env.reset(seed=0)
    a = np.random.default_rng(5).uniform(-1, 1, (6, 40))
    env.step(a[0])
    clone = pickle.loads(pickle.dumps(env))
    for x in a[1:]:
        o1, r1, *_ = env.step(x)
        o2, r2, *_ = clone.step(x)
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
    assert not clone.modal_basis.flags.writeable


# -- checkers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["flat", "modal"])
def test_gymnasium_env_checker(layout):
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(SMALL, action_layout=layout).unwrapped, skip_render_check=False)


@pytest.mark.parametrize("layout", ["flat", "modal"])
def test_sb3_env_checker(layout):
    from checkers import sb3_check_env

    sb3_check_env(gym.make(SMALL, action_layout=layout).unwrapped)


# -- action dtypes ------------------------------------------------------------------------------------------




@pytest.mark.parametrize("layout", LAYOUTS)
def test_action_dtypes_give_the_float64_result(layout):
    env = _env(layout)
    shape = env.action_space.shape
    base = np.random.default_rng(6).integers(-8, 9, shape) / 8.0  # exact in every dtype below
    integers = np.sign(base)

    def first_step(action):
        env.reset(seed=2)
        obs, reward, _, _, info = env.step(action)
        return obs, reward, info

    variants = [(base.astype(np.float16), base), (base.astype(">f8"), base), (base.astype(">f4"), base),
                (base.astype(np.longdouble), base), (base.astype(np.float32), base),
                (np.asfortranarray(base) if base.ndim == 2 else np.repeat(base, 2)[::2], base),
                (base.tolist(), base), (integers.astype(np.int32), integers), (integers.astype(np.int64), integers)]
    for action, reference in variants:
        got, want = first_step(action), first_step(reference.astype(np.float64))
        assert got[0].tobytes() == want[0].tobytes() and got[1] == want[1] and got[2] == want[2], \
            getattr(action, "dtype", type(action))
    for action in (base.astype(np.complex128), base > 0, base.astype(str), base.astype(object)):
        env.reset(seed=2)
        with pytest.raises(TypeError, match="must hold real numbers"):
            env.step(action)
    with pytest.raises(TypeError, match="must hold real numbers"):
        env.action_to_grid(base.astype(np.complex128))
    with pytest.raises(TypeError, match="must hold real numbers"):
        env.grid_to_action(np.zeros((21, 21), bool))


# -- kernels against NumPy references ------------------------------------------------------------------------


def test_flat_kernel_equals_numpy():
    rng = np.random.default_rng(7)
    controlled = rng.random((9, 9)) > 0.3
    index = np.flatnonzero(controlled)
    action = rng.uniform(-1.5, 1.5, index.size)
    command = np.where(controlled, rng.uniform(-3, 3, (9, 9)), 0.0)  # +0.0 off the controlled actuators, as in the env
    ref = command.copy()
    ref.flat[index] = np.clip(ref.flat[index] + np.clip(action, -1, 1) * 2.5, -3.2, 3.2)
    got = command.copy()
    assert kernels.apply_flat_action(action, got, index, 2.5, 3.2, True) == (0, np.abs(action).max())
    np.testing.assert_array_equal(got, ref)
    # the same arithmetic as the grid kernel
    grid = np.zeros((9, 9))
    grid[controlled] = action
    via_grid = command.copy()
    kernels.apply_action(grid, via_grid, controlled.astype(float), 2.5, 3.2, True)
    assert via_grid.tobytes() == got.tobytes()
    untouched = command.copy()
    assert kernels.apply_flat_action(action, untouched, index, 2.5, 3.2, False) == (2, np.abs(action).max())
    np.testing.assert_array_equal(untouched, command)
    action[2] = np.inf
    assert kernels.apply_flat_action(action, untouched, index, 2.5, 3.2, True) == (1, np.inf)
    np.testing.assert_array_equal(untouched, command)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_modal_kernel_equals_numpy(dtype):
    rng = np.random.default_rng(8)
    controlled = rng.random((9, 9)) > 0.3
    index = np.flatnonzero(controlled)
    modes = rng.standard_normal((index.size, 11))
    coeffs = rng.uniform(-1.5, 1.5, 11).astype(dtype)
    coeffs[4] = 0.0
    command = rng.uniform(-3, 3, (9, 9)) * controlled
    increment_ref = modes @ np.clip(coeffs.astype(np.float64), -1, 1)
    ref = command.copy()
    ref.flat[index] = np.clip(ref.flat[index] + increment_ref * 0.7, -4.0, 4.0)
    got = command.copy()
    clipped, increment = np.empty(11), np.empty(index.size)
    status, peak = kernels.apply_modal_action(coeffs, np.ascontiguousarray(modes.T), got, index, 0.7, 4.0, True,
                                              clipped, increment)
    assert status == 0 and peak == np.abs(coeffs.astype(np.float64)).max()
    np.testing.assert_allclose(increment, increment_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    assert 0 < (np.abs(ref) == 4.0).sum()  # the stroke clip was exercised
    untouched = command.copy()
    assert kernels.apply_modal_action(coeffs, np.ascontiguousarray(modes.T), untouched, index, 0.7, 4.0, False,
                                      clipped, increment)[0] == 2
    coeffs[1] = np.nan
    assert kernels.apply_modal_action(coeffs, np.ascontiguousarray(modes.T), untouched, index, 0.7, 4.0, True,
                                      clipped, increment) == (1, np.inf)
    np.testing.assert_array_equal(untouched, command)


def test_kl_basis_does_not_depend_on_the_eigensolvers_choice_in_degenerate_pairs():
    """Inside a subspace of equal variance (tip/tilt) any orthonormal basis LAPACK returns gives the same modes."""
    from astrogym.envs.adaptive_optics.optics import build_system

    cfg = AOConfig(n_subapertures=10)
    controlled = build_system(cfg).controlled
    basis = layouts.kl_basis(controlled, cfg.subaperture_m, cfg.r0_m, cfg.outer_scale_m)
    assert basis.variances[0] == pytest.approx(basis.variances[1], rel=1e-9)
    pair = basis.modes[:, :2] / np.linalg.norm(basis.modes[:, :2], axis=0)
    idx = np.argwhere(controlled).astype(float)
    monomials = layouts._monomials(idx - (np.array(controlled.shape) - 1) / 2)
    for angle, flip in ((0.3, 1), (2.0, -1), (-1.1, 1)):
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.diag([1, flip])
        np.testing.assert_allclose(layouts._canonical(pair @ rotation, monomials), pair, atol=1e-12)
    # tip (x, columns) and tilt (y, rows) swap under a transpose of the (symmetric) mask
    assert (controlled == controlled.T).all()
    tip, tilt = np.zeros(controlled.shape), np.zeros(controlled.shape)
    tip[controlled], tilt[controlled] = basis.modes[:, 0], basis.modes[:, 1]
    np.testing.assert_allclose(tip.T, tilt, atol=1e-8)
    assert tip[:, -1].max() > 0 and tilt[-1, :].max() > 0  # positive towards +x and +y


@pytest.mark.parametrize("layout", ["flat", "modal"])
def test_classical_controllers_refuse_another_layout_up_front(layout):
    from astrogym.agents.adaptive_optics import LeakyIntegrator, LinearPredictiveController

    env = _env(layout)
    for controller in (LeakyIntegrator, LinearPredictiveController):
        with pytest.raises(ValueError, match=rf"{controller.__name__} commands the \(N\+1, N\+1\) actuator grid; "
                                             rf"the env has action_layout='{layout}'"):
            controller(env)

"""curvature.py against float64 finite differences, closed forms on the quadratic, and each other."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import lecture_lib.surfaces as surfaces
from lecture_lib import curvature as cv

# Independent float64 NumPy versions of the surfaces (the references for finite differences).
NUMPY_SURFACES = {
    "rosenbrock": lambda w: (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2,
    "beale": lambda w: (
        (1.5 - w[0] + w[0] * w[1]) ** 2
        + (2.25 - w[0] + w[0] * w[1] ** 2) ** 2
        + (2.625 - w[0] + w[0] * w[1] ** 3) ** 2
    ),
    "himmelblau": lambda w: (w[0] ** 2 + w[1] - 11) ** 2 + (w[0] + w[1] ** 2 - 7) ** 2,
    "saddle": lambda w: 0.5 * w[0] ** 2 - 0.5 * w[1] ** 2 + 0.25 * w[1] ** 4,
    "rastrigin": lambda w: 20 + np.sum(w**2 - 10 * np.cos(2 * np.pi * w)),
}
POINTS = [(-1.2, 1.0), (0.3, -0.7), (1.1, 0.9)]


def fd_gradient(f, w, h=1e-6):
    e = np.eye(len(w))
    return np.array([(f(w + h * e[i]) - f(w - h * e[i])) / (2 * h) for i in range(len(w))])


def fd_hessian(f, w, h=1e-4):
    e = np.eye(len(w))
    n = len(w)
    H = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            H[i, j] = (
                f(w + h * e[i] + h * e[j])
                - f(w + h * e[i] - h * e[j])
                - f(w - h * e[i] + h * e[j])
                + f(w - h * e[i] - h * e[j])
            ) / (4 * h * h)
    return H


def rotation_H(kappa, a):
    """Closed form of quadratic(kappa, a): eigenvalue 1 along (cos a, sin a), kappa along (-sin a, cos a)."""
    Q = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return Q @ np.diag([1.0, kappa]) @ Q.T, Q


def mlp_loss():
    """A small random two-layer network's squared loss as a function of a parameter pytree (62 numbers)."""
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k1, (8, 3))
    y = jax.random.normal(k2, (8,))
    params = {
        "W1": 0.5 * jax.random.normal(k3, (3, 8)),
        "b1": jnp.zeros(8),
        "W2": 0.5 * jax.random.normal(k4, (8, 3)),
        "b2": jnp.zeros(3),
        "v": jnp.ones(3),
    }

    def loss(p):
        h = jnp.tanh(x @ p["W1"] + p["b1"][None])
        out = jnp.tanh(h @ p["W2"] + p["b2"][None]) @ p["v"]
        return jnp.mean((out - y) ** 2)

    return loss, params


@pytest.mark.parametrize("name", list(NUMPY_SURFACES))
@pytest.mark.parametrize("point", POINTS)
def test_gradient_and_hessian_match_float64_finite_differences(name, point):
    f64 = NUMPY_SURFACES[name]
    w = np.asarray(point, np.float64)
    s = surfaces.SURFACES[name]
    g = np.asarray(cv.gradient(s, jnp.asarray(w, jnp.float32)))
    H = np.asarray(cv.hessian(s, jnp.asarray(w, jnp.float32)))
    g_ref, H_ref = fd_gradient(f64, w), fd_hessian(f64, w)
    scale_g, scale_H = 1 + np.max(np.abs(g_ref)), 1 + np.max(np.abs(H_ref))
    np.testing.assert_allclose(g, g_ref, atol=2e-5 * scale_g)
    np.testing.assert_allclose(H, H_ref, atol=2e-5 * scale_H)


@pytest.mark.parametrize("kappa, a", [(1.0, 0.0), (10.0, 0.3), (1000.0, 0.7), (50.0, -2.0)])
def test_quadratic_closed_forms(kappa, a):
    s = surfaces.quadratic(kappa, a)
    H_ref, Q = rotation_H(kappa, a)
    w = jnp.asarray([0.4, -1.3])
    np.testing.assert_allclose(cv.hessian(s, w), H_ref, rtol=1e-5, atol=1e-5 * kappa)
    np.testing.assert_allclose(cv.gradient(s, w), H_ref @ np.asarray(w), rtol=1e-5, atol=1e-5 * kappa)
    lam, V = cv.spectrum(s, w)
    # float32: the small eigenvalue is known to about kappa * eps
    np.testing.assert_allclose(lam, [1.0, kappa], rtol=1e-5, atol=2e-7 * kappa)
    if kappa > 1:  # distinct eigenvalues: eigenvectors defined up to sign
        np.testing.assert_allclose(np.abs(np.asarray(V).T @ Q), np.eye(2), atol=1e-5)
    np.testing.assert_allclose(cv.condition_number(s, w), kappa, rtol=1e-5 + 2e-7 * kappa)


def test_spectrum_reconstructs_hessian_and_condition_number_of_a_saddle():
    s = surfaces.SURFACES["saddle"]
    w = jnp.asarray([0.2, 0.1])
    lam, V = cv.spectrum(s, w)
    assert lam[0] < 0 < lam[1]  # indefinite
    np.testing.assert_allclose(V @ jnp.diag(lam) @ V.T, cv.hessian(s, w), atol=1e-6)
    # H = diag(1, -1 + 3 y^2): magnitudes 1 and 0.97
    np.testing.assert_allclose(cv.condition_number(s, w), 1 / 0.97, rtol=1e-5)
    # where -1 + 3 y^2 = 0 the Hessian is singular: huge or infinite condition number
    assert float(cv.condition_number(s, jnp.asarray([0.0, 1 / np.sqrt(3.0)], jnp.float32))) > 1e5


@pytest.mark.parametrize("name", ["quadratic", "rosenbrock", "beale", "himmelblau", "saddle", "rastrigin"])
def test_hvp_equals_hessian_times_v(name):
    s = surfaces.SURFACES[name]
    w = jnp.asarray([0.7, -0.4])
    H = cv.hessian(s, w)
    for v in jax.random.normal(jax.random.key(1), (5, 2)):
        np.testing.assert_allclose(cv.hvp(s, w, v), H @ v, rtol=1e-5, atol=1e-4)


def test_hvp_on_a_pytree_mlp():
    loss, params = mlp_loss()
    flat, unravel = ravel_pytree(params)
    assert flat.size == 62
    H = cv.hessian(loss, params)
    assert H.shape == (62, 62)
    np.testing.assert_allclose(H, H.T, atol=1e-6)
    for v_flat in jax.random.normal(jax.random.key(2), (4, 62)):
        Hv = cv.hvp(loss, params, unravel(v_flat))
        assert jax.tree.structure(Hv) == jax.tree.structure(params)
        np.testing.assert_allclose(ravel_pytree(Hv)[0], H @ v_flat, rtol=1e-4, atol=1e-5)
    # the gradient keeps the structure, and its flat form matches finite differences of the flat function
    g = cv.gradient(loss, params)
    assert jax.tree.structure(g) == jax.tree.structure(params)


def test_hvp_under_jit_and_vmap():
    s = surfaces.quadratic(20.0, 0.4)
    H, _ = rotation_H(20.0, 0.4)
    V = jax.random.normal(jax.random.key(3), (7, 2))
    out = jax.jit(jax.vmap(lambda v: cv.hvp(s, jnp.zeros(2), v)))(V)
    np.testing.assert_allclose(out, np.asarray(V) @ H.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kappa, a", [(1.0, 0.0), (100.0, 0.7), (1000.0, 2.0)])
def test_taylor2_of_a_quadratic_is_the_quadratic(kappa, a):
    s = surfaces.quadratic(kappa, a)
    model = cv.taylor2(s, jnp.asarray([1.5, -2.0]))
    W = jax.random.uniform(jax.random.key(4), (50, 2), minval=-5, maxval=5)
    np.testing.assert_allclose(jax.vmap(model)(W), jax.vmap(s)(W), rtol=1e-5, atol=1e-4 * kappa)


@pytest.mark.parametrize("name", ["rosenbrock", "beale", "himmelblau", "saddle"])
def test_taylor_errors_shrink_as_h2_and_h3(name):
    # the error of the linear model is O(h^2), of the quadratic model O(h^3): halving h divides them by 4, 8
    f64 = NUMPY_SURFACES[name]
    s = surfaces.SURFACES[name]
    w0 = np.array([0.6, 0.8])
    d = np.array([0.8, -0.6])
    t1 = cv.taylor1(s, jnp.asarray(w0, jnp.float32))
    t2 = cv.taylor2(s, jnp.asarray(w0, jnp.float32))
    hs = np.array([0.08, 0.04])
    pts = jnp.asarray(w0 + hs[:, None] * d, jnp.float32)
    exact = np.array([f64(w0 + h * d) for h in hs])
    e1 = np.abs(np.asarray(jax.vmap(t1)(pts), np.float64) - exact)
    e2 = np.abs(np.asarray(jax.vmap(t2)(pts), np.float64) - exact)
    assert 3.3 < e1[0] / e1[1] < 4.7
    assert 6.0 < e2[0] / e2[1] < 10.0
    assert np.all(e2 < e1)


def test_taylor_models_touch_f_at_w0_and_accept_pytrees():
    loss, params = mlp_loss()
    for make in (cv.taylor1, cv.taylor2):
        np.testing.assert_allclose(make(loss, params)(params), loss(params), rtol=1e-6)


@pytest.mark.parametrize("kappa, a", [(1.0, 0.0), (100.0, 0.7), (1000.0, 0.7)])
@pytest.mark.parametrize("w", [(-4.0, 3.0), (2.0, 0.5), (0.1, -0.1)])
def test_newton_step_lands_on_the_minimum_of_a_quadratic(kappa, a, w):
    s = surfaces.quadratic(kappa, a)
    w = jnp.asarray(w)
    np.testing.assert_allclose(w + cv.newton_step(s, w), 0.0, atol=2e-4)


def test_damped_newton_step_matches_numpy_solve():
    s = surfaces.SURFACES["rosenbrock"]
    w = np.array([-1.2, 1.0], np.float32)
    H = fd_hessian(NUMPY_SURFACES["rosenbrock"], w.astype(np.float64))
    g = fd_gradient(NUMPY_SURFACES["rosenbrock"], w.astype(np.float64))
    for lam in (0.0, 1.0, 100.0):
        ref = -np.linalg.solve(H + lam * np.eye(2), g)
        np.testing.assert_allclose(cv.newton_step(s, jnp.asarray(w), lam), ref, rtol=1e-4, atol=1e-6)


def test_newton_step_keeps_the_pytree_structure():
    loss, params = mlp_loss()
    step = cv.newton_step(loss, params, damping=1.0)
    assert jax.tree.structure(step) == jax.tree.structure(params)
    flat = ravel_pytree(step)[0]
    H = cv.hessian(loss, params)
    g = ravel_pytree(cv.gradient(loss, params))[0]
    np.testing.assert_allclose((H + jnp.eye(62)) @ flat, -g, atol=1e-5)


@pytest.mark.parametrize("name", ["rosenbrock", "himmelblau", "saddle"])
def test_eager_calls_on_a_surface_share_one_compile_and_match_the_traced_versions(name):
    """Outside a trace, gradient, hessian, spectrum, condition_number and newton_step take f, g and H from one
    compiled program and finish in NumPy (float64); under jit they are the traced formulas: same numbers."""
    s, w = surfaces.SURFACES[name], jnp.array([0.3, -0.7])
    eager = (cv.gradient(s, w), cv.hessian(s, w), cv.spectrum(s, w)[0], cv.condition_number(s, w),
             cv.newton_step(s, w), cv.newton_step(s, w, damping=2.0))  # fmt: skip
    traced = jax.jit(
        lambda s, w: (
            cv.gradient(s, w),
            cv.hessian(s, w),
            cv.spectrum(s, w)[0],
            cv.condition_number(s, w),
            cv.newton_step(s, w),
            cv.newton_step(s, w, damping=2.0),
        )  # fmt: skip
    )(s, w)
    for a, b in zip(eager, traced):
        assert isinstance(a, jax.Array) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-5)
    lam, Q = cv.spectrum(s, w)
    H = np.asarray(cv.hessian(s, w), np.float64)
    np.testing.assert_allclose(H @ np.asarray(Q), np.asarray(Q) * np.asarray(lam), rtol=1e-5, atol=1e-4)
    cv.condition_number(s, w)
    before = cv._derivatives._cache_size()
    for f in (cv.gradient, cv.hessian, cv.spectrum, cv.condition_number, cv.newton_step):
        f(surfaces.SURFACES["beale"], w)
    assert cv._derivatives._cache_size() == before  # one compile for every surface and function


def test_newton_step_of_a_singular_hessian_is_not_finite():
    flat = surfaces.quadratic(condition=1.0)
    step = cv.newton_step(flat, jnp.zeros(2), damping=-1.0)  # H − I = 0
    assert not np.all(np.isfinite(np.asarray(step)))

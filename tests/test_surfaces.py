"""Test surfaces: closed-form values, minima, the contour grid, and switching without recompiling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lecture_lib as ll

S = ll.surfaces


@pytest.mark.parametrize("name", S.NAMES)
def test_every_registered_surface_has_stationary_global_minima(name):
    s = S.SURFACES[name]
    assert s.name == name
    for m in s.minima:
        assert float(s(jnp.asarray(m))) == pytest.approx(s.min_value, abs=1e-4)
        assert np.abs(np.asarray(jax.grad(s)(jnp.asarray(m)))).max() < 2e-3
    (x0, x1), (y0, y1) = s.bounds
    for p in [*s.minima, s.start]:
        assert x0 <= p[0] <= x1 and y0 <= p[1] <= y1
    # the minima are the lowest points of a fine grid
    xs, ys, Z = s.grid(201)
    assert Z.min() >= s.min_value - 1e-4


REFERENCE_VALUES = [
    (S.rosenbrock(), (-1.2, 1.0), 24.2),
    (S.rosenbrock(a=2.0, b=10.0), (0.0, 0.0), 4.0),
    (S.beale(), (0.0, 0.0), 1.5**2 + 2.25**2 + 2.625**2),
    (S.himmelblau(), (0.0, 0.0), 170.0),
    (S.saddle(), (1.0, 2.0), 0.5 - 2.0 + 4.0),
    (S.rastrigin(), (0.5, 0.5), 2 * 10 + 2 * (0.25 + 10)),
]


@pytest.mark.parametrize("s,w,value", REFERENCE_VALUES)
def test_values_against_hand_computed(s, w, value):
    assert float(s(jnp.asarray(w))) == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("kappa,angle", [(1.0, 0.0), (50.0, 0.0), (10.0, 0.7), (1000.0, -2.0)])
def test_quadratic_is_half_wHw_with_rotated_eigenvectors(kappa, angle):
    c, s_ = np.cos(angle), np.sin(angle)
    Q = np.array([[c, -s_], [s_, c]])  # columns: eigenvectors for eigenvalues 1 and kappa
    H = Q @ np.diag([1.0, kappa]) @ Q.T
    surface = S.quadratic(kappa, angle)
    w = np.random.default_rng(0).normal(size=(20, 2))
    ours = np.asarray(jax.vmap(surface)(jnp.asarray(w, jnp.float32)))
    np.testing.assert_allclose(ours, 0.5 * np.einsum("ni,ij,nj->n", w, H, w), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.hessian(surface)(jnp.zeros(2))), H, rtol=1e-5, atol=1e-4)


def test_grid_matches_pointwise_evaluation():
    s = S.SURFACES["himmelblau"]
    xs, ys, Z = s.grid(7)
    assert Z.shape == (7, 7) and xs[0] == s.bounds[0][0] and ys[-1] == s.bounds[1][1]
    for i in (0, 3, 6):
        for j in (1, 5):
            assert Z[i, j] == pytest.approx(float(s(jnp.array([xs[j], ys[i]]))), rel=1e-6)


def test_switching_surface_or_parameters_does_not_recompile(count_compiles):
    f = jax.jit(lambda s, w: jax.value_and_grad(s)(w))
    w = jnp.array([0.3, -0.2])
    f(S.SURFACES["quadratic"], w)
    others = [*S.SURFACES.values(), S.quadratic(3.0, 1.0), S.rosenbrock(2.0, 5.0), S.rastrigin(A=3)]
    with count_compiles() as c:
        for s in others:
            f(s, w)
    assert c.count == 0


def test_surface_parameters_work_under_vmap():
    kappas = jnp.array([1.0, 10.0, 100.0])
    values = jax.vmap(lambda k: S.quadratic(k)(jnp.array([0.0, 1.0])))(kappas)
    np.testing.assert_allclose(np.asarray(values), 0.5 * np.asarray(kappas), rtol=1e-6)


@pytest.mark.parametrize(
    "make,exc,match",
    [
        (
            lambda: S.quadratic(0.5),
            ValueError,
            r"condition must be finite and at least 1, got condition=0\.5",
        ),
        (lambda: S.quadratic(10.0, float("nan")), ValueError, r"angle must be finite, got angle=nan"),
        (lambda: S.rosenbrock(b=0.0), ValueError, r"b must be positive and finite, got b=0\.0"),
        (lambda: S.rastrigin(A=-1), ValueError, r"A must be positive and finite, got A=-1"),
        (lambda: S.SURFACES["beale"].grid(0), ValueError, r"n must be a positive integer, got n=0"),
        (lambda: S.SURFACES["beale"].grid(10.5), TypeError, r"n must be a positive integer, got n=10\.5"),
    ],
)
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_classes_with_the_same_fields_never_share_compiled_code():
    # register_dataclass made the structures of constant(lr) and inverse_sqrt(lr) compare equal, and jit
    # then ran one's compiled code for the other; the class is now part of the structure
    S, O = ll.schedules, ll.optimizers
    assert jax.tree.structure(S.constant(0.1)) != jax.tree.structure(S.inverse_sqrt(0.1))
    assert jax.tree.structure(O.adagrad(0.1)) != jax.tree.structure(O.newton())
    f = jax.jit(lambda s: s(jnp.int32(4)))
    assert float(f(S.inverse_sqrt(0.01))) == pytest.approx(0.005)
    assert float(f(S.constant(0.01))) == pytest.approx(0.01)


def test_optimizers_schedules_and_surfaces_flatten_without_running_python():
    # jaxlib flattens registered dataclasses in C++; the Python callbacks of a custom node cost ~4-8 µs of
    # every ll.run call. sys.setprofile sees every Python call (and every call of a Python function from C);
    # jax.tree.flatten's own wrappers (in jax/_src) are all it may see.
    import sys

    objects = [
        ll.optimizers.adam(0.1), ll.optimizers.nesterov(0.1), ll.second_order.lbfgs(),
        ll.schedules.warmup(ll.schedules.sgdr(0.1, period=10), 5), ll.surfaces.SURFACES["rosenbrock"],
    ]  # fmt: skip
    for obj in objects:
        calls = []
        sys.setprofile(
            lambda frame, event, arg, calls=calls: (
                calls.append(frame.f_code.co_filename)
                if event == "call" and "jax/_src/" not in frame.f_code.co_filename.replace("\\", "/")
                else None
            )
        )
        try:
            leaves, treedef = jax.tree.flatten(obj)
        finally:
            sys.setprofile(None)
        assert calls == [], (type(obj).__name__, calls)
        back = jax.tree.unflatten(treedef, leaves)
        assert type(back) is type(obj) and jax.tree.leaves(back) == leaves
        assert all(isinstance(leaf, jax.Array) for leaf in leaves)


@pytest.mark.parametrize("name", S.NAMES)
def test_value_and_grad_method_equals_autodiff_and_finite_differences(name):
    s = S.SURFACES[name]
    (x0, x1), (y0, y1) = s.bounds
    w = jax.random.uniform(jax.random.key(3), (8, 2), minval=jnp.array([x0, y0]), maxval=jnp.array([x1, y1]))
    for wi in w:
        value, grad = s.value_and_grad(wi)
        ref_value, ref_grad = jax.value_and_grad(s)(wi)
        # the same formulas; XLA may fuse them differently, so equal to a few float32 ulps
        np.testing.assert_allclose(value, ref_value, rtol=1e-6)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-6)
        # central differences in float64 on the closed form, independent of autodiff
        f = lambda p: float(s(jnp.asarray(p, jnp.float32)))
        h = 1e-2 * max(1.0, float(np.abs(wi).max()))
        fd = [(f(wi + h * e) - f(wi - h * e)) / (2 * h) for e in np.eye(2, dtype=np.float32)]
        np.testing.assert_allclose(grad, fd, rtol=2e-2, atol=2e-2 * max(1.0, abs(float(value))) ** 0.5)

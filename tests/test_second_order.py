"""second_order.py: Newton and L-BFGS against closed forms, NumPy, SciPy and torch.optim.LBFGS."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import torch

import lecture_lib.surfaces as surfaces
from lecture_lib.optimizers import sgd
from lecture_lib.second_order import CURVATURES, LBFGSState, lbfgs, newton, two_loop
from lecture_lib.trajectories import run

ROSENBROCK = surfaces.SURFACES["rosenbrock"]
SADDLE = surfaces.SURFACES["saddle"]


def rosenbrock64(w):
    """Value and gradient of Rosenbrock (a=1, b=100) in float64 NumPy."""
    r = w[1] - w[0] ** 2
    return (1 - w[0]) ** 2 + 100 * r**2, np.array([-2 * (1 - w[0]) - 400 * w[0] * r, 200 * r])


def rosenbrock64_hessian(w):
    return np.array([[2 - 400 * (w[1] - 3 * w[0] ** 2), -400 * w[0]], [-400 * w[0], 200.0]])


def first_within(path, target, tol):
    """Index of the first iterate within ``tol`` (max abs error) of ``target``; -1 if none."""
    ok = np.max(np.abs(np.asarray(path, np.float64) - target), axis=1) <= tol
    return int(np.argmax(ok)) if ok.any() else -1


@jax.jit
def _final_state(opt, f, w0, xi, noise):
    def step(carry, xi_t):
        w, state = carry
        return opt.update(jax.grad(f)(w) + noise * xi_t, state, w, objective=f), None

    return jax.lax.scan(step, (w0, opt.init(w0)), xi)[0]


def final_state(opt, f, w0, steps, *, noise=0.0, key=None):
    """Step ``opt`` as ``ll.run`` does (noise added to the gradient); the last iterate and state.

    ``f`` is a pytree (a Surface, or a ``jax.tree_util.Partial``): traced, so one compile serves all seeds.
    """
    w0 = jnp.asarray(w0, jnp.float32)
    xi = jnp.zeros((steps, w0.size)) if key is None else jax.random.normal(key, (steps, w0.size))
    return _final_state(opt, f, w0, xi, jnp.float32(noise))


def _quadratic_form(A, w):
    return 0.5 * w @ A @ w


# ---- Newton ------------------------------------------------------------------------------------------


def test_newton_solves_an_ill_conditioned_quadratic_in_one_step():
    s = surfaces.quadratic(condition=1000.0, angle=0.7)
    traj = run(newton(), s, s.start, 1)
    assert np.max(np.abs(traj.params[1])) <= 1e-4
    # gradient descent at its largest stable rate is nowhere near after one step
    assert np.max(np.abs(run(sgd(1.9e-3), s, s.start, 1).params[1])) > 1.0


@pytest.mark.parametrize("lr, damping", [(1.0, 0.0), (1.0, 10.0), (0.5, 1000.0), (0.3, 2.5)])
def test_damped_newton_step_matches_numpy_solve(lr, damping):
    w = np.array([-1.2, 1.0])
    traj = run(newton(lr, damping), ROSENBROCK, w, 1)
    H, g = rosenbrock64_hessian(w), rosenbrock64(w)[1]
    ref = w - lr * np.linalg.solve(H + damping * np.eye(2), g)
    np.testing.assert_allclose(traj.params[1], ref, rtol=1e-5, atol=1e-5)


def test_damping_shortens_the_step_towards_gradient_descent():
    s = surfaces.quadratic(condition=50.0, angle=0.3)
    w0 = np.array([2.0, -1.0], np.float32)
    steps = [np.asarray(run(newton(1.0, lam), s, w0, 1).params[1]) - w0 for lam in (0.0, 1.0, 10.0, 1e4)]
    norms = [np.linalg.norm(d) for d in steps]
    assert norms == sorted(norms, reverse=True)
    g = np.asarray(jax.grad(s)(jnp.asarray(w0)))
    # large damping: -(H + lam I)^{-1} g ~ -g / lam, a small gradient-descent step
    np.testing.assert_allclose(steps[-1], -g / 1e4, rtol=1e-2)


def test_newton_is_attracted_to_the_saddle_gradient_descent_escapes():
    w0 = [0.3, 0.2]
    traj = run(newton(), SADDLE, w0, 10)
    np.testing.assert_allclose(traj.params[-1], [0.0, 0.0], atol=1e-6)  # the saddle point, loss 0
    gd = run(sgd(0.1), SADDLE, w0, 300)
    np.testing.assert_allclose(np.abs(np.asarray(gd.params[-1])), [0.0, 1.0], atol=1e-4)  # a minimum
    assert float(gd.losses[-1]) == pytest.approx(-0.25, abs=1e-6)


def test_newton_on_a_pytree():
    A = jnp.asarray([[3.0, 1.0], [1.0, 2.0]])
    f = lambda p: 0.5 * p["a"] @ A @ p["a"] + jnp.sum((p["b"] - 2.0) ** 2)
    x0 = {"a": jnp.asarray([1.0, -1.0]), "b": jnp.asarray([0.0, 5.0, -3.0])}
    traj = run(newton(), f, x0, 1)
    np.testing.assert_allclose(traj.params["a"][1], 0.0, atol=1e-6)
    np.testing.assert_allclose(traj.params["b"][1], 2.0, atol=1e-6)


# ---- L-BFGS ------------------------------------------------------------------------------------------


def scipy_iterations_to(tol):
    path = [np.array([-1.2, 1.0])]
    scipy.optimize.minimize(
        rosenbrock64,
        path[0],
        method="L-BFGS-B",
        jac=True,
        callback=lambda xk: path.append(np.array(xk)),
        options=dict(maxcor=10, ftol=0, gtol=1e-10),
    )
    return first_within(path, 1.0, tol)


def test_lbfgs_on_rosenbrock_keeps_pace_with_scipy():
    ours = first_within(run(lbfgs(), ROSENBROCK, [-1.2, 1.0], 100).params, 1.0, 1e-5)
    ref = scipy_iterations_to(1e-5)
    assert ref > 0
    assert 0 < ours <= 2 * ref, (ours, ref)


def test_lbfgs_converges_fast_on_an_ill_conditioned_quadratic():
    s = surfaces.quadratic(condition=100.0, angle=0.5)
    traj = run(lbfgs(), s, s.start, 10)
    assert np.max(np.abs(traj.params[-1])) < 1e-4
    # gradient descent needs hundreds of steps for the same
    assert np.max(np.abs(run(sgd(0.0199), s, s.start, 100).params[-1])) > 1e-2


def test_first_step_is_scaled_like_torch():
    # no pair yet: first trial lr * min(1, 1/|g|_1) along -g; on the unit quadratic it passes Armijo
    s = surfaces.quadratic(condition=1.0)
    w0 = np.array([-4.0, 3.0], np.float32)
    np.testing.assert_allclose(run(lbfgs(), s, w0, 1).params[1], w0 * (1 - 1 / 7), rtol=1e-6)


def torch_lbfgs_path(f, w0, lr, memory, steps):
    w = torch.tensor(w0, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w],
        lr=lr,
        max_iter=1,
        history_size=memory,
        tolerance_grad=-1,
        tolerance_change=-1,
        line_search_fn=None,
    )

    def closure():
        opt.zero_grad()
        loss = f(w)
        loss.backward()
        return loss

    path = [w.detach().clone().numpy()]
    for _ in range(steps):
        opt.step(closure)
        path.append(w.detach().clone().numpy())
    return np.array(path)


def torch_quadratic(kappa, a):
    def f(w):
        u = np.cos(a) * w[0] + np.sin(a) * w[1]
        v = -np.sin(a) * w[0] + np.cos(a) * w[1]
        return 0.5 * (u * u + kappa * v * v)

    return f


@pytest.mark.parametrize(
    "surface, f_torch, lr, memory",
    [
        (surfaces.quadratic(10.0, 0.3), torch_quadratic(10.0, 0.3), 1.0, 10),
        (surfaces.quadratic(10.0, 0.3), torch_quadratic(10.0, 0.3), 0.5, 2),
        (ROSENBROCK, lambda w: (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2, 0.1, 5),
    ],
)
def test_without_line_search_matches_torch_lbfgs(surface, f_torch, lr, memory):
    ours = run(lbfgs(lr, memory, line_search=False), surface, [-1.2, 1.0], 20).params
    np.testing.assert_allclose(ours, torch_lbfgs_path(f_torch, [-1.2, 1.0], lr, memory, 20), atol=1e-5)


def bfgs_inverse_hessian(S, Y):
    """Dense BFGS recursion from H0 = gamma I over the pairs, oldest first (N&W eq. 6.17, 7.20)."""
    s, y = S[-1], Y[-1]
    H = (s @ y) / (y @ y) * np.eye(len(s))
    for s, y in zip(S, Y, strict=True):
        rho = 1 / (s @ y)
        V = np.eye(len(s)) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


@pytest.mark.parametrize("memory, steps", [(3, 4), (3, 9)])
@pytest.mark.parametrize("curvature", ["consecutive", "same_batch"])
def test_two_loop_equals_dense_bfgs_and_meets_the_secant_condition(memory, steps, curvature):
    # a 6-D quadratic with a fixed SPD Hessian; pairs from L-BFGS's own steps
    M = jax.random.normal(jax.random.key(0), (6, 6))
    f = jax.tree_util.Partial(_quadratic_form, M @ M.T / 6 + jnp.eye(6))
    w, state = final_state(lbfgs(memory=memory, curvature=curvature), f, jnp.arange(1.0, 7.0), steps)
    assert isinstance(state, LBFGSState) and state.S.shape == (memory, 6)
    k = min(int(state.count), memory)
    assert k >= 2
    slots = [(int(state.count) - k + i) % memory for i in range(k)]  # oldest to newest
    S, Y = np.asarray(state.S, np.float64)[slots], np.asarray(state.Y, np.float64)[slots]
    H_ref = bfgs_inverse_hessian(S, Y)
    for q in np.asarray(jax.random.normal(jax.random.key(1), (3, 6))):
        np.testing.assert_allclose(
            two_loop(state.S, state.Y, state.count, jnp.asarray(q)), H_ref @ q, rtol=2e-3
        )
    # secant condition H_k y = s for the newest pair
    newest = (int(state.count) - 1) % memory
    np.testing.assert_allclose(
        two_loop(state.S, state.Y, state.count, state.Y[newest]), state.S[newest], rtol=1e-3
    )


def test_two_loop_without_pairs_is_the_identity():
    q = jnp.asarray([1.0, -2.0, 3.0])
    np.testing.assert_allclose(two_loop(jnp.zeros((4, 3)), jnp.zeros((4, 3)), jnp.asarray(0), q), q)


@pytest.mark.parametrize("memory", [1, 3, 30])
@pytest.mark.parametrize("curvature", ["consecutive", "same_batch"])
def test_memory_and_curvature_options_converge_on_rosenbrock(memory, curvature):
    traj = run(lbfgs(memory=memory, curvature=curvature), ROSENBROCK, [-1.2, 1.0], 300)
    assert np.max(np.abs(traj.params[-1] - 1.0)) < 1e-4
    assert int(traj.diverged_at) == -1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_pairs_consecutive_versus_same_batch(seed):
    # run() adds noise to g after the fact: a consecutive y is the difference of two noisy gradients, while
    # same_batch computes y from the (noise-free, convex) objective, so s^T y > 0 in exact arithmetic.
    s = surfaces.quadratic(condition=10.0, angle=0.3)
    key = jax.random.key(seed)

    def stats(**kw):
        w, state = final_state(lbfgs(**kw), s, s.start, 200, noise=1.0, key=key)
        return int(state.n_pairs), int(state.n_bad_pairs), float(s(w))

    # oLBFGS as published: no line search
    pairs, bad, loss_naive = stats(lr=0.1, line_search=False)
    assert pairs > 20 and bad / pairs >= 0.2
    pairs, bad, loss_same = stats(lr=0.1, line_search=False, curvature="same_batch")
    assert pairs == 200 and bad == 0
    assert loss_same < 0.1 * loss_naive
    # with the line search: steps shrink to rounding level near the minimum, where a float32 gradient
    # difference can still give s^T y <= 0 for a few same-batch pairs
    pairs, bad, _ = stats(lr=1.0)
    assert bad / pairs >= 0.1
    pairs, bad, loss = stats(lr=1.0, curvature="same_batch")
    assert bad / pairs <= 0.1 and loss < 1e-6


def test_noisy_runs_stay_finite():
    s = surfaces.quadratic(condition=10.0, angle=0.3)
    for curvature in CURVATURES:
        opt = lbfgs(0.1, curvature=curvature, line_search=False)
        traj = run(opt, s, s.start, 200, noise=1.0, key=jax.random.key(3))
        assert np.all(np.isfinite(traj.losses))


def test_noise_free_consecutive_pairs_on_a_convex_function_are_all_good():
    s = surfaces.quadratic(condition=10.0, angle=0.3)
    state = final_state(lbfgs(), s, s.start, 6)[1]
    assert int(state.n_pairs) == 6 - 1 and int(state.n_bad_pairs) == 0


def test_consecutive_without_line_search_needs_no_objective():
    w = jnp.asarray([1.0, 2.0])
    opt = lbfgs(0.5, line_search=False)
    w1, _ = opt.update(w, opt.init(w), w)  # f = |w|^2 / 2, g = w
    np.testing.assert_allclose(w1, w - 0.5 / 3 * w)


# ---- both: compile once, vmap, errors ------------------------------------------------------------


def test_no_recompile_when_hyperparameters_surface_or_start_change(count_compiles):
    run(newton(1.0, 0.0), surfaces.quadratic(10.0, 0.0), [1.0, 2.0], 5)
    run(lbfgs(1.0), surfaces.quadratic(10.0, 0.0), [1.0, 2.0], 5)
    with count_compiles() as c:
        for lr, damping, kappa, a, x0 in [
            (0.5, 1.0, 100.0, 0.7, [-4.0, 3.0]),
            (0.9, 0.0, 3.0, -1.0, [2.0, 2.0]),
        ]:
            s = surfaces.quadratic(kappa, a)
            jax.block_until_ready(run(newton(lr, damping), s, x0, 5))
            jax.block_until_ready(run(lbfgs(lr), s, x0, 5))
            jax.block_until_ready(run(lbfgs(lr), ROSENBROCK, x0, 5))  # another surface: data too
    assert c.count == 0


@pytest.mark.parametrize("factory", [newton, lbfgs])
def test_run_under_vmap_over_learning_rates(factory):
    lrs = jnp.asarray([0.25, 0.5, 1.0])
    s = surfaces.quadratic(20.0, 0.4)
    batched = jax.vmap(lambda lr: run(factory(lr), s, s.start, 8).params)(lrs)
    for i, lr in enumerate([0.25, 0.5, 1.0]):
        np.testing.assert_allclose(batched[i], run(factory(lr), s, s.start, 8).params, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: newton(lr=-0.1), ValueError, r"lr must be positive and finite, got lr=-0.1"),
        (lambda: newton(lr=float("inf")), ValueError, r"lr must be positive and finite"),
        (
            lambda: newton(damping=-1.0),
            ValueError,
            r"damping must be non-negative and finite, got damping=-1.0",
        ),
        (lambda: newton(lr="1"), TypeError, r"lr must be a real number, got lr='1'"),
        (lambda: lbfgs(lr=0.0), ValueError, r"lr must be positive and finite, got lr=0.0"),
        (lambda: lbfgs(memory=0), ValueError, r"memory must be a positive integer, got memory=0"),
        (lambda: lbfgs(memory=2.5), TypeError, r"memory must be a positive integer, got memory=2.5"),
        (
            lambda: lbfgs(curvature="overlap"),
            ValueError,
            r"curvature must be 'consecutive' or 'same_batch', got ",
        ),
        (lambda: lbfgs(line_search=1), TypeError, r"line_search must be True or False, got line_search=1"),
    ],
)
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "opt, name",
    [
        (newton(), "newton"),
        (lbfgs(), "lbfgs"),
        (lbfgs(line_search=False, curvature="same_batch"), "lbfgs"),
    ],
)
def test_update_without_objective(opt, name):
    w = jnp.asarray([1.0, 2.0])
    with pytest.raises(TypeError, match=rf"{name} needs the objective; use ll.run or ll.training.fit"):
        opt.update(w, opt.init(w), w)


def test_labels_and_flags():
    assert newton().label == "Newton" and lbfgs().label == "L-BFGS"
    assert newton().needs_objective and lbfgs().needs_objective
    assert lbfgs(memory=4).memory == 4

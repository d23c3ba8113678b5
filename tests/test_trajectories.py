"""ll.run: against closed forms and hand-written loops; divergence, noise, vmap, compile counts, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lecture_lib as ll

O = ll.optimizers
QUAD = ll.surfaces.quadratic(condition=20.0, angle=0.3)
ROSEN = ll.surfaces.SURFACES["rosenbrock"]

FIRST_ORDER = {
    "sgd": lambda lr=1e-3: O.sgd(lr),
    "momentum": lambda lr=1e-3: O.momentum(lr, beta=0.9),
    "nesterov": lambda lr=1e-3: O.nesterov(lr, beta=0.9),
    "adagrad": lambda lr=1e-1: O.adagrad(lr),
    "rmsprop": lambda lr=1e-2: O.rmsprop(lr),
    "adam": lambda lr=1e-2: O.adam(lr),
}


def test_gradient_descent_on_a_quadratic_matches_the_closed_form():
    # w_k = (I - eta H)^k w_0 and E(w_k) = 1/2 w_k^T H w_k, in float64
    eta, steps = 0.04, 60
    H = np.asarray(jax.hessian(QUAD)(jnp.zeros(2)), np.float64)
    w0 = np.array([-4.0, 3.0])
    traj = ll.run(O.sgd(eta), QUAD, w0, steps)
    M = np.eye(2) - eta * H
    expected = np.stack([np.linalg.matrix_power(M, k) @ w0 for k in range(steps + 1)])
    np.testing.assert_allclose(np.asarray(traj.params), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(traj.losses), 0.5 * np.einsum("ki,ij,kj->k", expected, H, expected), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(np.asarray(traj.lrs), eta)
    assert int(traj.diverged_at) == -1


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_run_equals_a_python_loop_of_update(name):
    opt = FIRST_ORDER[name]()
    steps = 50
    traj = ll.run(opt, ROSEN, [-1.2, 1.0], steps)
    w = jnp.array([-1.2, 1.0])
    state = opt.init(w)
    path = [w]
    for _ in range(steps):
        w, state = opt.update(jax.grad(ROSEN)(w), state, w)
        path.append(w)
    np.testing.assert_allclose(np.asarray(traj.params), np.stack(path), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(traj.losses), jax.vmap(ROSEN)(jnp.stack(path)), rtol=1e-5)


def test_plain_function_and_pytree_start():
    def loss(p):
        return jnp.sum((p["a"] - 1.0) ** 2) + (p["b"] + 2.0) ** 2

    traj = ll.run(O.sgd(0.25), loss, {"a": jnp.zeros(3), "b": jnp.asarray(0.0)}, 40)
    assert traj.params["a"].shape == (41, 3) and traj.params["b"].shape == (41,)
    np.testing.assert_allclose(np.asarray(traj.params["a"][-1]), 1.0, atol=1e-5)
    np.testing.assert_allclose(float(traj.params["b"][-1]), -2.0, atol=1e-5)


def test_divergence_is_a_result_and_the_path_holds_its_last_finite_point():
    # eta * lambda_max = 0.5 * 20 = 10 > 2: |1 - eta*lambda| = 9 per step, overflow in float32 within 60 steps
    traj = ll.run(O.sgd(0.5), QUAD, [-4.0, 3.0], 100)
    k = int(traj.diverged_at)
    assert 10 < k < 60
    losses, params = np.asarray(traj.losses), np.asarray(traj.params)
    assert (
        np.all(np.isfinite(losses[:k])) and not np.isfinite(losses[k]) and np.all(np.isnan(losses[k + 1 :]))
    )
    assert np.all(np.isfinite(params)) and np.all(params[k:] == params[k - 1])
    # the losses before divergence grow by 81 a step, as the closed form says
    np.testing.assert_allclose(losses[k - 1] / losses[k - 2], 81.0, rtol=1e-3)


def test_a_non_finite_start_diverges_at_step_zero():
    traj = ll.run(O.sgd(0.1), QUAD, [np.inf, 0.0], 5)
    assert int(traj.diverged_at) == 0


def test_noise_is_gaussian_with_the_given_scale_and_reproducible():
    # from the minimum, one GD step moves by -eta * sigma * xi: check the spread over many keys
    eta, sigma = 0.1, 2.0
    keys = jax.random.split(jax.random.key(0), 4096)
    runs = jax.vmap(lambda k: ll.run(O.sgd(eta), QUAD, jnp.zeros(2), 1, noise=sigma, key=k))(keys)
    step = np.asarray(runs.params[:, 1])
    assert np.std(step, axis=0) == pytest.approx([eta * sigma] * 2, rel=0.05)
    assert np.abs(np.mean(step, axis=0)).max() < 4 * eta * sigma / np.sqrt(4096)
    a = ll.run(O.adam(0.1), ROSEN, [-1.2, 1.0], 30, noise=0.5, key=jax.random.key(3))
    b = ll.run(O.adam(0.1), ROSEN, [-1.2, 1.0], 30, noise=0.5, key=jax.random.key(3))
    c = ll.run(O.adam(0.1), ROSEN, [-1.2, 1.0], 30, noise=0.5, key=jax.random.key(4))
    np.testing.assert_array_equal(np.asarray(a.params), np.asarray(b.params))
    assert not np.allclose(np.asarray(a.params), np.asarray(c.params))


def test_vmap_over_learning_rates_and_starts_equals_separate_runs():
    lrs = jnp.array([1e-3, 2e-3, 4e-3])
    many = jax.vmap(lambda lr: ll.run(O.nesterov(lr), ROSEN, [-1.2, 1.0], 40))(lrs)
    for i, lr in enumerate([1e-3, 2e-3, 4e-3]):
        one = ll.run(O.nesterov(lr), ROSEN, [-1.2, 1.0], 40)
        np.testing.assert_allclose(np.asarray(many.params[i]), np.asarray(one.params), rtol=1e-5, atol=1e-6)
    starts = jnp.array([[-1.0, 2.0], [1.5, -0.5]])
    many = jax.vmap(lambda x0: ll.run(O.adam(0.05), ROSEN, x0, 20))(starts)
    assert many.params.shape == (2, 21, 2)
    np.testing.assert_allclose(np.asarray(many.params[:, 0]), np.asarray(starts))


def test_run_many_equals_separate_runs():
    opts = [make() for make in FIRST_ORDER.values()]
    trajs = ll.run_many(opts, ROSEN, [-1.2, 1.0], 30)
    for opt, traj in zip(opts, trajs, strict=True):
        np.testing.assert_allclose(
            np.asarray(traj.params), np.asarray(ll.run(opt, ROSEN, [-1.2, 1.0], 30).params), rtol=1e-6
        )


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_changing_hyperparameters_surface_noise_seed_or_start_never_recompiles(name, count_compiles):
    make = FIRST_ORDER[name]
    x0 = jnp.array([-1.2, 1.0])
    ll.run(make(), QUAD, x0, 50)
    ll.run(make(), QUAD, x0, 50, noise=0.1, key=jax.random.key(0))
    variants = [
        (make(1), ll.surfaces.quadratic(5.0, 0.1), jnp.array([1.0, 2.0])),
        (make(3e-4), ll.surfaces.quadratic(500.0, -1.0), x0),
        (make(), ROSEN, x0),
        (make(), ll.surfaces.SURFACES["saddle"], x0),
    ]
    if name in ("momentum", "nesterov"):
        variants.append(
            (
                FIRST_ORDER[name]().__class__(
                    lr=jnp.float32(0.1), beta=jnp.float32(0.5), nesterov=name == "nesterov"
                ),
                QUAD,
                x0,
            )
        )
    if name == "adam":
        variants.append((O.adam(0.1, b1=0.5, b2=0.9, eps=1e-3), QUAD, x0))
    keys = [jax.random.key(s) for s in (1, 2)]
    with count_compiles() as c:
        for opt, surface, start in variants:
            ll.run(opt, surface, start, 50)
        for key, noise in zip(keys, (0.2, 3.0), strict=True):
            ll.run(make(), QUAD, x0, 50, noise=noise, key=key)
    assert c.count == 0


BAD = [
    (
        lambda: ll.run(O.sgd(0.1), QUAD, [0.0, 0.0], 0),
        ValueError,
        r"steps must be a positive integer, got steps=0",
    ),
    (
        lambda: ll.run(O.sgd(0.1), QUAD, [0.0, 0.0], 2.5),
        TypeError,
        r"steps must be a positive integer, got steps=2\.5",
    ),
    (
        lambda: ll.run(O.sgd(0.1), QUAD, [0.0, 0.0, 0.0], 5),
        ValueError,
        r"x0 must have shape \(2,\).*got shape \(3,\)",
    ),
    (
        lambda: ll.run(O.sgd(0.1), QUAD, [0.0, 0.0], 5, noise=0.1),
        ValueError,
        r"noise=0\.1 needs a random key",
    ),
    (
        lambda: ll.run(O.sgd(0.1), QUAD, [0.0, 0.0], 5, noise=-1.0, key=jax.random.key(0)),
        ValueError,
        r"noise must be non-negative and finite, got noise=-1\.0",
    ),
    (lambda: ll.run("adam", QUAD, [0.0, 0.0], 5), TypeError, r"opt must be an optimizer from ll.optimizers"),
    (
        lambda: ll.run(O.sgd(0.1), 3.0, [0.0, 0.0], 5),
        TypeError,
        r"surface_or_fn must be a Surface or a function",
    ),
    (
        lambda: ll.run(O.sgd(0.1), QUAD, [0.0, 0.0], 5, schedule=0.1),
        TypeError,
        r"schedule must be a step schedule",
    ),
]


@pytest.mark.parametrize("call,exc,match", BAD)
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


SCHEDULE_VARIANTS = {
    # name: two parameter sets of the same schedule type (same shapes, other values)
    "constant": (lambda S: S.constant(0.01), lambda S: S.constant(1)),
    "step_decay": (lambda S: S.step_decay(0.01, 10), lambda S: S.step_decay(0.02, 3, gamma=0.5)),
    "multistep": (lambda S: S.multistep(0.01, [5, 20]), lambda S: S.multistep(0.03, [2, 7], gamma=0.3)),
    "exponential": (lambda S: S.exponential(0.01, 0.99), lambda S: S.exponential(0.001, 1.05)),
    "inverse_time": (lambda S: S.inverse_time(0.01), lambda S: S.inverse_time(0.02, power=0.5, tau=3.0)),
    "inverse_sqrt": (lambda S: S.inverse_sqrt(0.01), lambda S: S.inverse_sqrt(0.5)),
    "linear": (lambda S: S.linear(0.01, 30), lambda S: S.linear(0.02, 10, end=0.001)),
    "polynomial": (lambda S: S.polynomial(0.01, 30), lambda S: S.polynomial(0.02, 10, power=2.0, end=1e-3)),
    "cosine": (lambda S: S.cosine(0.01, 30), lambda S: S.cosine(0.05, 12, lr_min=1e-3)),
    "sgdr": (lambda S: S.sgdr(0.01, 10), lambda S: S.sgdr(0.02, 4, mult=2, lr_min=1e-4)),
    "trapezoid": (lambda S: S.trapezoid(0.01, 40, 5, 10), lambda S: S.trapezoid(0.02, 30, 2, 20)),
    "triangular": (lambda S: S.triangular(1e-3, 1e-2, 5), lambda S: S.triangular(1e-4, 0.1, 11)),
    "warmup": (
        lambda S: S.warmup(S.cosine(0.01, 40), 5),
        lambda S: S.warmup(S.cosine(0.03, 20, lr_min=1e-3), 9, start=1e-3),
    ),
}


@pytest.mark.parametrize("name", SCHEDULE_VARIANTS)
def test_a_schedule_drives_the_learning_rate_and_its_parameters_never_recompile(name, count_compiles):
    S = ll.schedules
    first, second = (make(S) for make in SCHEDULE_VARIANTS[name])
    x0 = jnp.array([-1.2, 1.0])
    traj = ll.run(O.momentum(0.1), QUAD, x0, 50, schedule=first)
    np.testing.assert_allclose(np.asarray(traj.lrs), np.asarray(first(jnp.arange(50))), rtol=1e-6, atol=1e-9)
    opt, surface, start = O.momentum(0.3, beta=0.5), ll.surfaces.quadratic(7.0), x0 + 1  # prepared first
    with count_compiles() as c:
        traj = ll.run(opt, surface, start, 50, schedule=second)
    assert c.count == 0
    np.testing.assert_allclose(np.asarray(traj.lrs), np.asarray(second(jnp.arange(50))), rtol=1e-6, atol=1e-9)


def test_reduce_on_plateau_is_refused_by_run_with_a_pointer_to_fit():
    with pytest.raises(TypeError, match="reduce_on_plateau is driven by a metric once per epoch"):
        ll.run(O.sgd(0.1), QUAD, [0.0, 0.0], 5, schedule=ll.schedules.reduce_on_plateau(0.1))

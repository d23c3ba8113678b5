"""ll.run: against closed forms and hand-written loops; divergence, noise, vmap, compile counts, errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

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


def _zero(w):
    return 0.0 * jnp.sum(w)  # no gradient: SGD's path is minus the cumulated noise


@pytest.mark.parametrize("size", [1, 2, 5])
def test_the_noise_added_is_the_documented_draw(size):
    # with lr = noise = 1 on a flat function, w_t - w_{t+1} is the noise of step t
    key, steps = jax.random.key(11), 60
    traj = ll.run(O.sgd(1.0), _zero, jnp.zeros(size), steps, noise=1.0, key=key)
    xi = -np.diff(np.asarray(traj.params, np.float64), axis=0)
    ref = np.asarray(ll.trajectories.gaussian_noise(key, steps, size))
    assert ref.shape == (steps, size) and ref.dtype == np.float32
    np.testing.assert_allclose(xi, ref, atol=2e-5)  # rounding of the cumulated path
    # the noise of step t does not depend on steps; a legacy uint32 key and an rbg key work too
    np.testing.assert_array_equal(np.asarray(ll.trajectories.gaussian_noise(key, 7, size)), ref[:7])
    for other in (jax.random.PRNGKey(11), jax.random.key(11, impl="rbg")):
        z = ll.trajectories.gaussian_noise(other, steps, size)
        assert z.shape == (steps, size) and np.all(np.isfinite(z))


def test_the_noise_is_standard_normal_and_independent_across_coordinates_steps_and_keys():
    from scipy import stats

    # consecutive small seeds (key(0), key(1), ...: key data [0, i]) as well as split keys
    keys = [jax.random.key(i) for i in range(512)] + list(jax.random.split(jax.random.key(5), 512))
    z = np.asarray(jax.vmap(lambda k: ll.trajectories.gaussian_noise(k, 200, 3))(jnp.stack(keys)), np.float64)
    n = z.size  # 1024 keys x 200 steps x 3 coordinates
    assert abs(z.mean()) < 5 / np.sqrt(n)
    np.testing.assert_allclose(z.reshape(-1, 3).std(axis=0), 1.0, atol=5 * np.sqrt(0.5 / z[..., 0].size))
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    assert abs(stats.kurtosis(z.ravel())) < 5 * np.sqrt(24 / n)
    assert 2.0 < np.abs(z).max() < 6.0
    tol = 5 / np.sqrt(z[:, :-1].size)

    def corr(a, b):
        return abs(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    for i, j in [(0, 1), (1, 2), (0, 2)]:
        assert corr(z[..., i], z[..., j]) < tol  # coordinates (both halves of a Box–Muller pair)
        assert corr(z[..., i] ** 2, z[..., j] ** 2) < 3 * tol  # not only uncorrelated: independent radii
    assert corr(z[:, 1:], z[:, :-1]) < tol  # steps
    assert corr(z[1:], z[:-1]) < tol  # neighbouring keys
    assert corr(z[1:] ** 2, z[:-1] ** 2) < 3 * tol


RUNS_THAT_DIVERGE_OR_NOT = [
    (O.sgd(0.5), QUAD, [-4.0, 3.0], {}),  # diverges mid-run
    (O.sgd(0.1), QUAD, [np.inf, 0.0], {}),  # at step 0
    (O.sgd(0.04), QUAD, [-4.0, 3.0], {"noise": 3.0, "key": jax.random.key(1)}),
    (O.adam(0.3), ROSEN, [-1.2, 1.0], {"noise": 0.5, "key": jax.random.key(2)}),
    (
        O.momentum(0.02, beta=0.9),
        ROSEN,
        [-1.2, 1.0],
        {"schedule": ll.schedules.step_decay(0.05, 10, gamma=2.0)},
    ),
    (ll.second_order.lbfgs(1.0), ROSEN, [-1.2, 1.0], {}),
]


@pytest.mark.parametrize("case", range(len(RUNS_THAT_DIVERGE_OR_NOT)))
def test_returning_the_state_changes_no_recorded_number(case):
    # return_state=True also keeps the state of the last finite point in the loop; the record stays the same
    opt, surface, x0, kw = RUNS_THAT_DIVERGE_OR_NOT[case]
    fast = ll.run(opt, surface, x0, 80, **kw)
    held = ll.run(opt, surface, x0, 80, return_state=True, **kw)
    assert fast.state is None and held.state is not None
    for a, b in zip(fast[:4], held[:4], strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("nesterov", [False, True])
def test_the_returned_state_of_a_diverged_run_is_the_one_of_its_last_finite_point(nesterov):
    # the loop steps on after divergence; the state it returns is that of the last finite iterate, which a run
    # stopped there (d - 1 updates, no divergence) returns as its final state
    opt, x0 = (O.nesterov if nesterov else O.momentum)(0.5, beta=0.9), [-4.0, 3.0]
    gone = ll.run(opt, QUAD, x0, 200, return_state=True)
    d = int(gone.diverged_at)
    assert d > 1
    kept = ll.run(opt, QUAD, x0, d - 1, return_state=True)
    assert int(kept.diverged_at) == -1
    for a, b in zip(jax.tree.leaves(gone.state), jax.tree.leaves(kept.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(np.asarray(a).any() for a in jax.tree.leaves(gone.state))  # a state worth comparing


def test_a_numpy_start_is_read_on_every_call_even_when_its_device_copy_is_kept():
    start = np.array([-4.0, 3.0], np.float32)
    first = [np.asarray(ll.run(O.sgd(0.04), QUAD, start, 5).params) for _ in range(3)]  # copy kept
    start[:] = [1.0, -2.0]  # mutated in place: the same object, other numbers
    moved = np.asarray(ll.run(O.sgd(0.04), QUAD, start, 5).params)
    np.testing.assert_array_equal(moved[0], [1.0, -2.0])
    np.testing.assert_array_equal(first[2][0], [-4.0, 3.0])
    np.testing.assert_array_equal(moved, np.asarray(ll.run(O.sgd(0.04), QUAD, jnp.asarray(start), 5).params))
    # inside a trace the copy would be a tracer: it is not kept (the next call outside would leak it)
    twice = jax.jit(
        lambda lr: ll.run(O.sgd(lr), QUAD, start, 5).params - ll.run(O.sgd(lr), QUAD, start, 5).params
    )
    np.testing.assert_array_equal(np.asarray(twice(0.04)), 0.0)
    np.testing.assert_array_equal(np.asarray(ll.run(O.sgd(0.04), QUAD, start, 5).params), moved)


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


def test_a_plain_run_on_a_surface_equals_the_general_path_for_every_kind_of_start():
    # run() checks the slider case (surface, no schedule, no noise) in a short path of its own
    surface, opt = ll.surfaces.SURFACES["rosenbrock"], ll.optimizers.adam(0.1)
    ref = ll.trajectories.run_many((opt,), surface, [-1.2, 1.0], 40)[0]
    for x0 in ([-1.2, 1.0], np.array([-1.2, 1.0]), np.array([-1.2, 1.0], np.float32), jnp.array([-1.2, 1.0])):
        traj = ll.run(opt, surface, x0, 40)
        for a, b in zip(jax.tree.leaves(traj), jax.tree.leaves(ref), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match=r"x0 must have shape \(2,\)"):
        ll.run(opt, surface, np.zeros(3, np.float32), 40)


def _loop_body_copies(hlo: str) -> list[str]:
    """The shapes copied by the while loops' bodies of a compiled module's text."""
    bodies = set(re.findall(r"body=%([\w.\-]+)", hlo))
    shapes, inside = [], False
    for line in hlo.splitlines():
        if not inside and line.startswith("%") and line[1:].split(" ", 1)[0] in bodies:
            inside = True
        elif inside and line.startswith("}"):
            inside = False
        elif inside and " copy(" in line:
            shapes.append(line.split("=", 1)[1].split("copy(")[0].strip())
    assert bodies, "no while loop in the compiled text"
    return shapes


@pytest.mark.parametrize("runs", [None, 8])
def test_the_loop_never_copies_the_path(runs):
    # A path read back inside the loop made XLA copy the whole (runs, steps + 1, 2) buffer every step under
    # vmap (1,024 noisy runs: 135 ms instead of 9). The compiled loop body copies no path (w and scalars,
    # a few bytes, it may).
    steps, key = 50, jax.random.key(0)
    if runs is None:
        f = jax.jit(lambda lr: ll.run(O.sgd(lr), ROSEN, ROSEN.start, steps))
        copies = _loop_body_copies(f.lower(jnp.float32(1e-3)).compile().as_text())
        assert not any(c.startswith(f"f32[{steps + 1},2]") for c in copies), copies
    else:
        f = jax.jit(jax.vmap(lambda k: ll.run(O.adam(0.1), ROSEN, ROSEN.start, steps, noise=0.5, key=k)))
        copies = _loop_body_copies(f.lower(jax.random.split(key, runs)).compile().as_text())
        assert not any(c.startswith(f"f32[{runs},{steps + 1},2]") for c in copies), copies


SLIDER_OPTIMIZERS = {
    **FIRST_ORDER,
    "adamw": lambda: O.adamw(1e-2, weight_decay=0.1),
    "newton": lambda: O.newton(damping=0.1),
    "lbfgs": lambda: O.lbfgs(),
}


@pytest.mark.parametrize("name", SLIDER_OPTIMIZERS)
def test_a_slider_run_is_cheap_enough_for_xla_to_run_it_on_the_calling_thread(name):
    # XLA:CPU runs a program inline only when its cost analysis counts under 1,000 flops (a loop body counts
    # once); above, every call is handed to a worker thread and waited for (~10-30 us of a ~35 us call).
    # A pass over the whole path after the loop counted ~2,000 at 500 steps.
    opt, x0 = SLIDER_OPTIMIZERS[name](), jnp.asarray(ROSEN.start)
    for steps in (500, 5000):
        cost = ll.trajectories._run_surface.lower(opt, ROSEN, x0, steps).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        assert cost["flops"] < 1000, (steps, cost["flops"])


def _voluntary_context_switches() -> int:
    """Voluntary context switches of every thread of this process so far (Linux /proc)."""
    total = 0
    for status in Path(f"/proc/{os.getpid()}/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:  # a thread that ended meanwhile
            continue
        total += int(text.split("voluntary_ctxt_switches:")[1].split()[0])
    return total


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in Linux /proc")
@pytest.mark.parametrize("name", SLIDER_OPTIMIZERS)
def test_a_slider_run_wakes_no_other_thread(name):
    # Every thread hand-off (to XLA's worker or its thread pool) is a voluntary context switch of the waiting
    # thread. Before the layout of _scan, 300 calls of a 500-step run switched 146-600 times (GD to Newton);
    # the hyperparameters of Adam, hoisted out of the loop as three extra kernels, alone took its program
    # past the ~9 kernels XLA runs in turn before it hands half of them to its pool.
    opt = SLIDER_OPTIMIZERS[name]()
    for _ in range(5):
        jax.block_until_ready(ll.run(opt, ROSEN, ROSEN.start, 500))
    before = _voluntary_context_switches()
    for _ in range(300):
        jax.block_until_ready(ll.run(opt, ROSEN, ROSEN.start, 500))
    assert _voluntary_context_switches() - before < 30

"""experiments_lbfgs.py: the L-BFGS with a traced history size agrees with ``second_order.lbfgs``, and the
recap slide's claims hold in its runs (full batch fast, naive minibatch pairs noisy, same-batch pairs never
of negative curvature)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lecture_lib as ll
import lecture_lib.experiments_lbfgs as L


@pytest.fixture(scope="module")
def default_runs():
    return L.runs()  # m = 10, η = 0.05, seed 0: what notebook 01's panel shows first


def test_traced_memory_matches_the_library():
    p, _ = L.problem(0)
    F = L.loss_fn(p.x, p.y, p.lam)
    w0 = jnp.zeros(p.x.shape[1])
    m = 5
    reference = ll.run(ll.second_order.lbfgs(memory=m), F, w0, 12).params

    @jax.jit
    def ours(w):
        def step(carry, _):
            w, s = carry
            g = jax.grad(F)(w)
            w, s = L.update(s, w, g, F, jnp.int32(m), 1.0, same_batch=False, line_search=True)
            return (w, s), w

        return jax.lax.scan(step, (w, L.init(w)), None, length=12)[1]

    np.testing.assert_allclose(np.asarray(ours(w0)), np.asarray(reference[1:]), rtol=1e-4, atol=1e-5)


def test_gaps_are_measured_from_the_minimum(default_runs):
    p, f_star = L.problem(0)
    assert f_star == L.optimum(p)
    F = L.loss_fn(p.x, p.y, p.lam)
    gap = default_runs.full_lbfgs
    assert gap[0] == pytest.approx(float(F(jnp.zeros(p.x.shape[1]))) - f_star, rel=1e-5)
    assert np.nanmin(gap) > -1e-6  # float32 F(w) never below the float64 F*, up to rounding


def test_claims_hold_in_the_runs(default_runs):
    r = default_runs
    full, naive, same = r.bad_share
    assert same == 0.0 and full == 0.0
    assert naive > 0.2
    assert not np.isfinite(r.naive[-1]) or r.naive[-1] > 5 * r.same_batch[-1]
    k_lbfgs = L.iterations_to(r.full_lbfgs, 1e-4)
    assert 0 < k_lbfgs < 30 and L.iterations_to(r.full_gd, 1e-4) == -1  # GD: not within 200 iterations
    assert r.full_lbfgs.shape == (L.LBFGS_STEPS + 1,) and r.full_gd.shape == (L.GD_STEPS + 1,)
    assert r.naive.shape == r.same_batch.shape == (L.EPOCHS * -(-L.N // L.BATCH) + 1,)


def test_iterations_to():
    assert L.iterations_to([1.0, 1e-3, 1e-5, 1e-6], 1e-4) == 2
    assert L.iterations_to([1.0, np.nan, 1e-3], 1e-4) == -1


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: L.runs(memory=0), ValueError, "memory must be a positive integer"),
        (lambda: L.runs(memory=L.M_MAX + 1), ValueError, f"memory must be at most M_MAX={L.M_MAX}"),
        (lambda: L.runs(memory=2.5), TypeError, "memory must be a positive integer"),
        (lambda: L.runs(eta=-0.1), ValueError, "eta must be positive and finite"),
        (lambda: L.runs(seed=-1), ValueError, "seed must be a non-negative integer"),
        (lambda: L.runs(batch=L.N + 1), ValueError, f"batch must be at most N={L.N}"),
        (lambda: L.runs(epochs=0), ValueError, "epochs must be a positive integer"),
    ],
)
def test_runs_rejects_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()

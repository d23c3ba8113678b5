"""Checkers for the notebooks' exercises: compare a student's function with the reference on random inputs
and say what is wrong in words, not just "assertion failed".

Each checker knows the reference and a table of typical mistakes (each written as code). When the
student's output differs from the reference, the checker looks for the mistake whose output it matches and
reports that mistake's explanation ("your bias correction is missing: the first step moved 10x too
little"). A correct function passes silently and the checker returns a short confirmation.

In the notebooks the exercise cell holds the reference answer between ``# BEGIN SOLUTION`` and
``# END SOLUTION`` (CI runs it); ``make student`` writes copies with the answer replaced by a stub.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class ExerciseError(AssertionError):
    """The student's function does not do what the slide says; the message explains how it differs."""


def _close(a, b, rtol=1e-4, atol=1e-6) -> bool:
    try:
        a_arrays = [np.asarray(x, np.float64) for x in (a if isinstance(a, tuple) else (a,))]
        b_arrays = [np.asarray(x, np.float64) for x in (b if isinstance(b, tuple) else (b,))]
    except (TypeError, ValueError):
        return False
    if len(a_arrays) != len(b_arrays):
        return False
    return all(
        x.shape == y.shape and np.allclose(x, y, rtol=rtol, atol=atol) for x, y in zip(a_arrays, b_arrays)
    )


def _check(name: str, student: Callable, reference: Callable, mistakes, cases) -> str:
    if not callable(student):
        raise TypeError(f"pass your function itself, e.g. check_{name}(my_{name}); got {student!r}")
    for args in cases:
        try:
            got = student(*args)
        except NotImplementedError:
            raise ExerciseError(
                f"{name}: not written yet — replace the `raise NotImplementedError` line"
            ) from None
        expected = reference(*args)
        if _close(got, expected):
            continue
        for wrong, explanation in mistakes:
            if _close(got, wrong(*args)):
                raise ExerciseError(f"{name}: {explanation}")
        raise ExerciseError(
            f"{name}: wrong result for the inputs {args!r}:\n  expected {expected!r}\n  got      {got!r}"
        )
    return f"{name}: correct on {len(cases)} random cases"


# -- Exercise (notebook 01): the Newton step ------------------------------------------------------------


def _newton(g, H):
    return -np.linalg.solve(H, g)


NEWTON_MISTAKES = [
    (lambda g, H: np.linalg.solve(H, g), "the sign is wrong: the Newton step is -H⁻¹∇E, it goes downhill"),
    (lambda g, H: -H @ g, "you multiplied by H; the step divides by the curvature: -H⁻¹∇E (np.linalg.solve)"),
    (lambda g, H: -g, "that is a gradient step with η = 1; the Newton step rescales it by H⁻¹"),
    (
        lambda g, H: -g / np.diag(H),
        "you divided by the diagonal of H only; use the whole matrix (solve H d = -g)",
    ),
]


def check_newton_step(newton_step: Callable, *, seed: int = 0) -> str:
    """``newton_step(g, H)`` must return the step ``d = -H⁻¹ g`` (not the new point)."""
    rng = np.random.default_rng(seed)
    cases = []
    for n in (2, 3, 5):
        A = rng.normal(size=(n, n))
        cases.append((rng.normal(size=n), A @ A.T + n * np.eye(n)))
    return _check("newton_step", newton_step, _newton, NEWTON_MISTAKES, cases)


# -- Exercise (notebook 02): one Adam update ------------------------------------------------------------


def _adam(w, g, m, v, t, lr, b1, b2, eps, *, correct=True, t_shift=0, eps_inside=False, square=True):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * (g * g if square else g)
    tt = t + t_shift
    m_hat = m / (1 - b1**tt) if correct else m
    v_hat = v / (1 - b2**tt) if correct else v
    denom = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
    return w - lr * m_hat / denom, m, v


ADAM_MISTAKES = [
    (
        lambda *a: _adam(*a, correct=False),
        "your bias correction is missing: m and v start at 0, so early on they are biased toward 0; at t = 1 "
        "with β₁ = 0.9, β₂ = 0.999 your step is (1-β₁)/√(1-β₂) ≈ 3.2x the corrected one. Divide m by "
        "(1 - β₁ᵗ) and v by (1 - β₂ᵗ)",
    ),
    (
        lambda *a: _adam(*a, t_shift=-1) if a[4] > 1 else (np.nan,),
        "your bias correction uses t - 1: t counts the updates including this one (the first has t = 1)",
    ),
    (
        lambda *a: _adam(*a, eps_inside=True),
        "ε belongs outside the square root: m̂ / (√v̂ + ε), as in the paper and PyTorch",
    ),
    (
        lambda *a: _adam(*a, square=False),
        "v must average the *squared* gradient g², not g",
    ),
]


def check_adam_update(adam_update: Callable, *, seed: int = 0) -> str:
    """``adam_update(w, g, m, v, t, lr, b1, b2, eps)`` returns ``(w, m, v)`` after update number ``t``."""
    rng = np.random.default_rng(seed)
    cases = []
    for t in (1, 2, 10):
        n = 4
        cases.append(
            (
                rng.normal(size=n),
                rng.normal(size=n) * np.array([1e-3, 1e-1, 1.0, 10.0]),
                rng.normal(size=n) * 0.1 * (t > 1),
                np.abs(rng.normal(size=n)) * 0.1 * (t > 1),
                t,
                1e-2,
                0.9,
                0.999,
                1e-8,
            )
        )
    return _check("adam_update", adam_update, lambda *a: _adam(*a), ADAM_MISTAKES, cases)


# -- Exercise (notebook 03): one epoch of incremental updates ------------------------------------------


def _sgd_epoch(w, X, y, eta, order, *, batch=False, ignore_order=False, sign=1.0, no_x=False):
    w = np.array(w, np.float64)
    if batch:  # one averaged update
        r = X @ w - y
        return w - sign * eta * (X.T @ r) / len(y)
    for i in range(len(y)) if ignore_order else order:
        r = X[i] @ w - y[i]
        w = w - sign * eta * (r if no_x else r * X[i])
    return w


SGD_EPOCH_MISTAKES = [
    (
        lambda *a: _sgd_epoch(*a, batch=True),
        "that is one batch update (the averaged gradient); an SGD epoch makes "
        "n updates, one per sample, each with that sample's gradient",
    ),
    (
        lambda *a: _sgd_epoch(*a, ignore_order=True),
        "you visited the samples in stored order; use the given `order` (the epoch's random permutation)",
    ),
    (lambda *a: _sgd_epoch(*a, sign=-1.0), "the sign is wrong: step against the gradient, w ← w − η ∇loss"),
    (
        lambda *a: _sgd_epoch(*a, no_x=True),
        "the gradient of ½(xᵀw − y)² with respect to w is (xᵀw − y)·x: you left out the factor x",
    ),
]


def check_sgd_epoch(sgd_epoch: Callable, *, seed: int = 0) -> str:
    """``sgd_epoch(w, X, y, eta, order)``: one pass of SGD on ½(xᵢᵀw − yᵢ)², samples in ``order``."""
    rng = np.random.default_rng(seed)
    cases = []
    for n, d in ((5, 2), (8, 3), (6, 1)):
        X = rng.normal(size=(n, d))
        cases.append((rng.normal(size=d), X, rng.normal(size=n), 0.1, rng.permutation(n)))
    return _check("sgd_epoch", sgd_epoch, _sgd_epoch, SGD_EPOCH_MISTAKES, cases)


# -- Exercise (notebook 04): SGD with a shrinking learning rate ------------------------------------------


def _decaying_sgd(grad, w0, eta0, tau, steps, *, constant=False, shift=0, sqrt=False):
    w = np.array(w0, np.float64)
    for k in range(steps):
        kk = k + shift
        eta = eta0 if constant else eta0 / (1 + kk / tau) ** (0.5 if sqrt else 1.0)
        w = w - eta * grad(w)
    return w


DECAY_MISTAKES = [
    (lambda *a: _decaying_sgd(*a, constant=True), "your learning rate does not shrink: η_k = η₀ / (1 + k/τ)"),
    (lambda *a: _decaying_sgd(*a, shift=1), "k starts at 0: the first step uses η₀ itself"),
    (lambda *a: _decaying_sgd(*a, sqrt=True), "that is η₀/√(1 + k/τ); the slide's rate is ∝ 1/k"),
]


def check_decaying_sgd(decaying_sgd: Callable, *, seed: int = 0) -> str:
    """``decaying_sgd(grad, w0, eta0, tau, steps)`` runs w ← w − η_k grad(w) with η_k = η₀/(1 + k/τ)."""
    rng = np.random.default_rng(seed)
    cases = []
    for d in (1, 3):
        A = np.diag(rng.uniform(0.5, 2.0, size=d))
        cases.append((lambda w, A=A: A @ w, rng.normal(size=d), 0.3, 5.0, 12))
    return _check("decaying_sgd", decaying_sgd, _decaying_sgd, DECAY_MISTAKES, cases)


# -- Exercise (notebook 05): the minibatches of one epoch ------------------------------------------------


def _minibatches(perm, b, *, floor=False, ignore_perm=False):
    perm = np.arange(len(perm)) if ignore_perm else np.asarray(perm)
    n = len(perm)
    m = n // b if floor else -(-n // b)
    return tuple(perm[i * b : (i + 1) * b] for i in range(m))


MINIBATCH_MISTAKES = [
    (
        lambda *a: _minibatches(*a, floor=True),
        "you dropped the last, partial batch: an epoch must see all n "
        "samples, so there are m = ⌈n/b⌉ batches",
    ),
    (
        lambda *a: _minibatches(*a, ignore_perm=True),
        "the batches must follow the epoch's permutation `perm`, not the stored order",
    ),
]


def check_minibatches(minibatches: Callable, *, seed: int = 0) -> str:
    """``minibatches(perm, b)``: the index arrays of one epoch, consecutive chunks of ``perm``."""
    rng = np.random.default_rng(seed)
    cases = [(rng.permutation(n), b) for n, b in ((10, 3), (12, 4), (7, 7), (9, 2))]

    def student(perm, b):
        return tuple(np.asarray(x) for x in minibatches(perm, b))

    return _check("minibatches", student, _minibatches, MINIBATCH_MISTAKES, cases)


# -- Exercise (notebook 06): the variance of a batch error ------------------------------------------------


def _batch_variance(var_loss, b, n, replace, *, no_fpc=False, fpc_n=False, times=False):
    if times:
        return var_loss * b
    v = var_loss / b
    if replace or no_fpc:
        return v
    return v * ((n - b) / n if fpc_n else (n - b) / (n - 1))


BATCH_VARIANCE_MISTAKES = [
    (
        lambda *a: _batch_variance(*a, no_fpc=True),
        "without replacement the b samples are distinct, which "
        "lowers the variance by the finite-population factor (n − b)/(n − 1)",
    ),
    (
        lambda *a: _batch_variance(*a, fpc_n=True),
        "the finite-population factor is (n − b)/(n − 1), not "
        "(n − b)/n: with b = n the batch is the whole set and the variance must be 0",
    ),
    (lambda *a: _batch_variance(*a, times=True), "averaging b independent losses divides the variance by b"),
]


def check_batch_variance(batch_variance: Callable, *, seed: int = 0) -> str:
    """``batch_variance(var_loss, b, n, replace)``: the variance of the mean loss of a batch of b of n."""
    rng = np.random.default_rng(seed)
    cases = [(float(rng.uniform(0.5, 2)), b, 50, replace) for b in (2, 10, 49) for replace in (True, False)]
    return _check("batch_variance", batch_variance, _batch_variance, BATCH_VARIANCE_MISTAKES, cases)

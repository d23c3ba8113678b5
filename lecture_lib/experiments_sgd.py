r"""SGD experiments behind the lecture's claims, each a pure function returning JAX arrays.

- :func:`batch_error_variance`: :math:`\operatorname{var}(E) = \operatorname{var}(\text{loss})/b`, and the
  finite-population factor :math:`(n-b)/(n-1)` without replacement.
- :func:`empirical_risks`: the empirical risk is an unbiased estimate of the expected loss, variance ∝ 1/n.
- :func:`sgd_noisy_quadratic`: Bottou, Curtis & Nocedal (2018) Theorems 4.6/4.7 and Robbins–Monro.
- :func:`batch_vs_sgd`: one epoch of SGD beats one batch update at equal gradient evaluations.
- :func:`sampling_orders`: reshuffling beats sampling with replacement; a sorted order drifts.

Shapes (sizes, steps, epochs, draws) are static; rates, noise, data and keys are traced, so everything is
vmappable over them. Expected numbers: ``shared/research/papers.md`` §5.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks, sampling, schedules

_HI = jax.lax.Precision.HIGHEST


def _pint(name, value):
    return _checks.positive_int(name, value, array=False)


def _sizes(name, values, n) -> tuple[int, ...]:
    values = tuple(values) if np.ndim(values) else (values,)
    sizes = tuple(_pint(name, v) for v in values)
    if not sizes or max(sizes) > n:
        raise ValueError(f"{name} must be a non-empty list of sizes from 1 to n={n}, got {name}={values!r}")
    return sizes


def loglog_slope(x, y):
    """Least-squares slope of log y against log x: −1 for y ∝ 1/x.

    On concrete values in NumPy (float64, returned as a float32 array): eager ``jnp`` would compile a few
    small programs for every new length; under a trace in ``jnp``."""
    if not any(isinstance(a, jax.core.Tracer) for a in (x, y)):
        lx, ly = (
            np.log(np.asarray(x, np.float32), dtype=np.float64),
            np.log(np.asarray(y, np.float32), dtype=np.float64),
        )
        lx = lx - lx.mean()
        return jax.device_put(np.float32(np.sum(lx * (ly - ly.mean())) / np.sum(lx * lx)))
    lx, ly = jnp.log(jnp.asarray(x, jnp.float32)), jnp.log(jnp.asarray(y, jnp.float32))
    lx = lx - jnp.mean(lx)
    return jnp.sum(lx * (ly - jnp.mean(ly))) / jnp.sum(lx * lx)


# ---- 1. variance of the batch error; empirical vs expected risk -------------------------------------------


class BatchVariance(NamedTuple):
    b: jax.Array  # (k,) batch sizes
    var_replacement: jax.Array  # (k,) variance of the batch mean over the draws, with replacement
    var_without: jax.Array  # (k,) the same without replacement
    pred_replacement: jax.Array  # (k,) var(loss)/b
    pred_without: jax.Array  # (k,) var(loss)/b · (n−b)/(n−1)


_STATE = 1 << 22  # most floats of Fisher–Yates state (n per draw) held at once: draws go in chunks of this
_BLOCK = 64  # steps whose random bits are drawn together, ahead of the steps


def _rotl(x, r):
    return (x << r) | (x >> (32 - r))


def _xoshiro128ss(s):
    """One step of xoshiro128** (Blackman & Vigna 2021) on a tuple of four uint32 state arrays:
    (32 random bits per element, the next state)."""
    s0, s1, s2, s3 = s
    out = _rotl(s1 * jnp.uint32(5), 7) * jnp.uint32(9)
    t = s1 << 9
    s2 = s2 ^ s0
    s3 = s3 ^ s1
    s1 = s1 ^ s2
    s0 = s0 ^ s3
    return out, (s0, s1, s2 ^ t, _rotl(s3, 11))


def _below(u, m):
    r"""Lemire's multiply-shift :math:`\lfloor u\,m/2^{32}\rfloor \in [0, m)` for uint32 bits u and a count
    m < 2^32 (the high word of the 64-bit product, from 16-bit halves: no uint64 without jax_enable_x64).
    Each outcome has probability :math:`\lfloor 2^{32}/m\rfloor/2^{32}` or
    :math:`\lceil 2^{32}/m\rceil/2^{32}`: a relative bias below m/2^32 (5·10⁻⁷ for m = 2048), far under any
    sampling error of the experiment."""
    m = jnp.asarray(m, jnp.uint32)
    uh, ul, mh, ml = u >> 16, u & 0xFFFF, m >> 16, m & 0xFFFF
    mid = uh * ml + ((ul * ml) >> 16)
    return (uh * mh + (mid >> 16) + ((ul * mh + (mid & 0xFFFF)) >> 16)).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("sizes", "draws"))
def _batch_variance(losses, key, *, sizes, draws):
    n, k, steps = losses.shape[0], len(sizes), max(sizes)
    l = losses - jnp.mean(losses)  # centred: float32 sums of 1,024 terms keep their digits
    chunks = -(-draws // max(1, min(draws, _STATE // n)))
    width = -(-draws // chunks)  # draws per chunk (the last chunk's padding draws are dropped)
    block = min(_BLOCK, steps)
    blocks = -(-steps // block)  # steps past max(sizes) in the last block are never read
    # the row of the running sums each step's sums go to: size b's after step b − 1, row k (discarded) else
    row = np.full(blocks * block, k, np.int32)
    row[np.asarray(sizes) - 1] = np.arange(k)
    # Random bits: xoshiro128** (Blackman & Vigna 2021; passes BigCrush and PractRand), one generator per
    # draw with 128 bits of state seeded from `key` by jax.random.bits (threefry by default): a deterministic
    # function of the key (an all-zero seed, probability 2^-128, is the only bad one). ~12 uint32 operations
    # per 32 bits against threefry_2x32's ~60, whose bits dominated the cost of the earlier version.
    seeds = jax.random.bits(key, (chunks, 4, width), jnp.uint32)
    lane = jnp.arange(width, dtype=jnp.int32)

    def bits(state, i):  # step i's two indices for every draw of the chunk
        u_with, state = _xoshiro128ss(state)
        u_without, state = _xoshiro128ss(state)
        i = jnp.minimum(i, n - 1)  # padding steps past n (when max(sizes) = n) stay in bounds
        j = i + _below(u_without, n - i)  # uniform in [i, n)
        return state, (_below(u_with, n), j * width + lane, i * width + lane)

    # Both halves in one loop over steps i = 0 … max(sizes) − 1, all draws of a chunk at once:
    # - with replacement: add loss[j], j uniform in [0, n);
    # - without: partial Fisher–Yates on a per-draw copy a (n, width) of the losses: j uniform in [i, n), add
    #   a[j] and move a[i] into slot j (slot i is never read again). After b steps the values taken are a
    #   uniformly random b-subset of the n losses, in random order: the prefixes nest, so one loop of
    #   max(sizes) steps with 2 random words per step and draw gives every b; no pass over all n items.
    def step(carry, inputs):
        a, s_with, s_without, sums = carry
        j_with, at_j, at_i, r = inputs
        v = a[at_j]
        # The scatter's indices depend on the gathered v (v == v unless v is NaN, when slot i, dead, takes
        # it): XLA:CPU then runs the gather first and updates `a` in place; without that dependency it copied
        # the whole state twice a step (40x slower).
        a = a.at[jnp.where(v == v, at_j, at_i)].set(a[at_i], unique_indices=True)
        s_with, s_without = s_with + l[j_with], s_without + v
        sums = jax.lax.dynamic_update_index_in_dim(sums, jnp.stack([s_with, s_without]), r, 0)
        return (a, s_with, s_without, sums), None

    def one_block(carry, inputs):  # the bits of _BLOCK steps first, then the steps: two small loop bodies
        state, rest = carry
        i, r = inputs
        state, (j_with, at_j, at_i) = jax.lax.scan(bits, state, i)
        rest, _ = jax.lax.scan(step, rest, (j_with, at_j, at_i, r))
        return (state, rest), None

    def chunk(_, seed):
        zero = jnp.zeros(width)
        rest = (
            jnp.broadcast_to(l[:, None], (n, width)).reshape(-1),
            zero,
            zero,
            jnp.zeros((k + 1, 2, width)),
        )
        i = jnp.arange(blocks * block).reshape(blocks, block)
        (_, (*_, sums)), _ = jax.lax.scan(
            one_block, (tuple(seed), rest), (i, jnp.asarray(row).reshape(i.shape))
        )
        return None, sums[:k]

    _, sums = jax.lax.scan(chunk, None, seeds)  # (chunks, k, 2, width)
    b = jnp.asarray(sizes, jnp.float32)
    means = jnp.transpose(sums, (2, 1, 0, 3)).reshape(2, k, -1)[:, :, :draws] / b[None, :, None]
    var = jnp.var(means, axis=2, ddof=1)
    var_loss = jnp.mean(l * l)  # population variance of the n losses
    return BatchVariance(
        jnp.asarray(sizes, jnp.int32),
        var[0],
        var[1],
        var_loss / b,
        var_loss / b * (n - b) / (n - 1),
    )


def batch_error_variance(losses, batch_sizes, *, key, draws=10_000) -> BatchVariance:
    r"""Variance of the batch error :math:`E = \frac1b\sum_{i\in B}\text{loss}_i` over ``draws`` batches.

    Claim (slide "Mini Batches"): :math:`\operatorname{var}(E) = \operatorname{var}(\text{loss})/b`, a
    log-log slope of −1 in b, when the batch is drawn with replacement; without replacement from a finite
    population of n, :math:`\operatorname{var}(E) = \frac{\operatorname{var}(\text{loss})}{b}\frac{n-b}{n-1}`.
    ``losses`` are the per-sample losses (n,) of a fixed model, e.g. ``(f(x) - y)**2`` on a function-fit
    sample. Draws for different b are correlated (nested prefixes of one sequence per draw); each b alone
    has the exact distribution (up to the multiply-shift's relative bias < n/2^32, see ``_below``).
    Sampling: i.i.d. indices (with) and a partial Fisher–Yates shuffle of max(batch_sizes) steps (without),
    driven by per-draw xoshiro128** generators seeded from ``key``: deterministic for a given key.
    """
    losses = jnp.asarray(losses, jnp.float32)
    if losses.ndim != 1 or losses.shape[0] < 2:
        raise ValueError(f"losses must be a 1-D array of at least 2 losses, got shape {losses.shape}")
    sizes = _sizes("batch_sizes", batch_sizes, losses.shape[0])
    draws = _pint("draws", draws)
    if draws < 2:
        raise ValueError(f"draws must be at least 2 to estimate a variance, got draws={draws}")
    return _batch_variance(losses, key, sizes=sizes, draws=draws)


class EmpiricalRisk(NamedTuple):
    risks: jax.Array  # (len(sizes), draws) empirical risk (1/n)Σ loss of each fresh sample of size n
    expected: jax.Array  # exact expected loss E[(f(X) − Y)²] (quadrature)
    var_loss: jax.Array  # exact var of one sample's loss: var(risk) = var_loss / n


@functools.partial(jax.jit, static_argnames=("f", "sizes", "draws"))
def _empirical_risks(problem, key, *, f, sizes, draws):
    # one i.i.d. sample of draws·Σn points, cut into the draws of each size: one sampler, compiled once
    x, y = problem.sample(key, draws * sum(sizes))
    sq = (jnp.reshape(f(x), y.shape) - y) ** 2
    ends = np.cumsum([0, *(draws * n for n in sizes)])
    risks = [jnp.mean(sq[a:e].reshape(draws, n), axis=1) for a, e, n in zip(ends[:-1], ends[1:], sizes)]
    e2 = problem.expected_loss(f, noisy=False)  # E[e²], e = f(X) − g(X)
    # E[e⁴] by the same quadrature: the "model" g + e² has squared error e⁴
    e4 = problem.expected_loss(
        lambda x: problem.g(x[:, 0]) + (jnp.reshape(f(x), x.shape[:1]) - problem.g(x[:, 0])) ** 2,
        noisy=False,
    )
    s2 = problem.noise**2  # loss = (e − σε)², ε ~ N(0, 1): E[loss²] = E[e⁴] + 6σ²E[e²] + 3σ⁴
    var_loss = e4 + 6 * s2 * e2 + 3 * s2 * s2 - (e2 + s2) ** 2
    return EmpiricalRisk(jnp.stack(risks), e2 + s2, var_loss)


def empirical_risks(problem, f, sizes, *, key, draws=10_000) -> EmpiricalRisk:
    r"""Empirical risks :math:`\frac1n\sum_i (f(x_i)-y_i)^2` of ``draws`` fresh samples of each size n.

    Claim (slides "the empirical risk"): it is an unbiased estimate of the expected loss
    :math:`E[(f(X)-Y)^2]` (the mean of the draws matches ``expected``), and its variance is
    :math:`\operatorname{var}(\text{loss})/n`. ``problem`` is ``ll.data.function_fit_problem(...)``; ``f``
    maps inputs (m, 1) to (m, 1) or (m,) and is static (pass the same object to reuse the compiled version).
    """
    if not callable(f):
        raise TypeError(f"f must map inputs (m, 1) to outputs, got f={f!r}")
    sizes = tuple(_pint("sizes", n) for n in (sizes if np.ndim(sizes) else (sizes,)))
    return _empirical_risks(problem, key, f=f, sizes=sizes, draws=_pint("draws", draws))


# ---- 2. SGD on a noisy strongly convex quadratic (Bottou, Curtis & Nocedal 2018, §4) ----------------------


class NoisyQuadratic(NamedTuple):
    F: jax.Array  # (steps+1,) mean over replicas of F(w_k) − F*, k = 1 … steps+1 (index 0 is w_1)
    F_exact: jax.Array  # (steps+1,) exact E[F(w_k)] − F* from the second-moment recursion
    contraction: jax.Array  # (steps+1,) Π_{j<k} (1 − η_j c): ‖w_k‖/‖w_1‖ of the noise-free run
    eta: jax.Array  # (steps,) step sizes η_k
    sum_eta: jax.Array  # (steps,) partial sums Σ_{j≤k} η_j (Robbins–Monro: must diverge)
    sum_eta2: jax.Array  # (steps,) partial sums Σ_{j≤k} η_j² (Robbins–Monro: must converge)


_CHUNK = 100  # noise drawn up front per chunk of steps: 2x faster than per step, and memory stays bounded


@functools.partial(jax.jit, static_argnames=("steps", "replicas", "d", "noisy"))
def _noisy_quadratic(table, key, c, sigma, w1, *, steps, replicas, d, noisy):
    T = min(steps, _CHUNK)  # table: η for ⌈steps/T⌉·T steps (the padding is run and dropped)

    def chunk(w, i):
        if noisy:  # drawn flat and reshaped: XLA:CPU compiles a 3-D draw 10x slower (3 s vs 0.3 s)
            xi = jax.random.normal(jax.random.fold_in(key, i), (T * replicas * d,)).reshape(T, replicas, d)
        else:
            xi = jnp.zeros((T, 1, 1))

        def step(w, inputs):
            eta, xi_t = inputs
            w = w - eta * (c * w + sigma * xi_t)  # g = ∇F(w) + σξ
            return w, jnp.mean(jnp.sum(w * w, axis=1))

        return jax.lax.scan(step, w, (jax.lax.dynamic_slice_in_dim(table, i * T, T), xi))

    w = jnp.full((replicas if noisy else 1, d), w1, jnp.float32)
    _, sq = jax.lax.scan(chunk, w, jnp.arange(-(-steps // T)))  # mean ‖w_k‖² over the replicas
    eta = table[:steps]

    def moment(m, eta):  # E[w²] of one coordinate: m ← (1 − ηc)² m + η²σ²
        m = (1 - eta * c) ** 2 * m + (eta * sigma) ** 2
        return m, m

    _, m = jax.lax.scan(moment, w1 * w1, eta)
    F = 0.5 * c * jnp.concatenate([d * w1 * w1 * jnp.ones(1), sq.reshape(-1)[:steps]])
    F_exact = 0.5 * c * d * jnp.concatenate([w1 * w1 * jnp.ones(1), m])
    contraction = jnp.concatenate([jnp.ones(1), jnp.cumprod(1 - eta * c)])
    return NoisyQuadratic(F, F_exact, contraction, eta, jnp.cumsum(eta), jnp.cumsum(eta * eta))


def sgd_noisy_quadratic(schedule, steps, *, key=None, replicas=500, d=10, c=1.0, sigma=1.0, w1=3.0):
    r"""SGD on :math:`F(w) = \frac c2\lVert w\rVert^2` in d dimensions, :math:`g = \nabla F(w) + \sigma\xi`.

    ``schedule`` is an ``ll.schedules`` schedule or a number (constant step); step t = k − 1 uses
    ``schedule(t)``. ``replicas`` independent runs from :math:`w_1 = w_1\mathbf 1`; ``key=None`` needs
    ``sigma=0`` (one noise-free run). Claims (papers.md §5, with c = L = 1, M = dσ², μ = 1):

    - constant α: E[F] levels off at :math:`\frac{d\alpha\sigma^2}{2(2-\alpha c)}`
      (:func:`quadratic_plateau`), below Theorem 4.6's :math:`\bar\alpha LM/(2c\mu)`, ∝ α;
    - :math:`\alpha_k = \beta/(\gamma+k)` (``inverse_time(β/(γ+1), 1, γ+1)``): E[F] ∝ 1/k if β > 1/c, under
      Theorem 4.7's :math:`\nu/(\gamma+k)`, and only :math:`k^{-2\beta c}` if β < 1/(2c);
    - :math:`\eta_0/(1+k/\tau)^p`, p < 1: E[F] ∝ η_k ∝ k^(−p) (Σ η² = ∞ for p ≤ ½); :math:`\eta_0\gamma^k`:
      Σ η < ∞ and even the noise-free run stalls at ``contraction[-1]`` ‖w_1‖ > 0.
    """
    if not isinstance(schedule, schedules.Schedule):
        if not (_checks.is_traced(schedule) or isinstance(schedule, (int, float, np.number))):
            raise TypeError(f"schedule must be an ll.schedules schedule or a number, got {schedule!r}")
        schedule = schedules.Constant(_checks.positive("schedule", schedule))
    sigma = _checks.nonnegative("sigma", sigma)
    if key is None and (_checks.is_traced(sigma) or float(sigma) != 0.0):
        shown = "a traced value" if _checks.is_traced(sigma) else repr(float(sigma))
        raise ValueError(f"sigma={shown} needs a random key: pass key=jax.random.key(seed)")
    c, w1 = _checks.positive("c", c), _checks.real("w1", w1, rule="be finite")
    shapes = {"steps": _pint("steps", steps), "replicas": _pint("replicas", replicas), "d": _pint("d", d)}
    # the schedule as its table of rates: every schedule family shares one compiled run per shape
    T = min(shapes["steps"], _CHUNK)
    table = schedule(jnp.arange(-(-shapes["steps"] // T) * T, dtype=jnp.int32))
    return _noisy_quadratic(table, key, c, sigma, w1, **shapes, noisy=key is not None)


def quadratic_plateau(alpha, *, c=1.0, sigma=1.0, d=10):
    r"""Exact limit of E[F(w_k)] − F* at constant step α: :math:`\frac{d\alpha\sigma^2}{2(2-\alpha c)}`."""
    alpha = _checks.real("alpha", alpha, lo=0.0, hi=2.0 / float(c), lo_open=True, hi_open=True)
    return d * alpha * sigma**2 / (2 * (2 - alpha * c))


def theorem_4_6_bound(alpha, *, L=1.0, c=1.0, M=10.0, mu=1.0):
    r"""Bottou et al.'s fixed-step limit :math:`\bar\alpha L M/(2c\mu)` (valid for α ≤ μ/(L M_G))."""
    return _checks.positive("alpha", alpha) * L * M / (2 * c * mu)


def theorem_4_7_nu(beta, gamma, *, F1, L=1.0, c=1.0, M=10.0, mu=1.0):
    r"""Theorem 4.7's E[F(w_k)] − F* ≤ ν/(γ+k) for α_k = β/(γ+k), β > 1/(cμ):
    :math:`\nu = \max\{\frac{\beta^2 LM}{2(\beta c\mu - 1)}, (\gamma+1)(F(w_1)-F^\star)\}`."""
    beta = float(_checks.positive("beta", beta))
    if beta * c * mu <= 1:
        raise ValueError(f"beta must exceed 1/(c·mu)={1 / (c * mu):g} for Theorem 4.7, got beta={beta:g}")
    gamma = float(_checks.positive("gamma", gamma))
    return max(beta**2 * L * M / (2 * (beta * c * mu - 1)), (gamma + 1) * float(F1))


# ---- 3./4. a finite sum of least squares: batch vs SGD, and sample orders ----------------------------------


def _ls_checks(x, y, lr, epochs):
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    if x.ndim != 2 or y.shape != x.shape[:1]:
        raise ValueError(f"x must have shape (n, p) and y shape (n,), got x {x.shape} and y {y.shape}")
    if not _checks.is_traced(lr) and not np.all(np.isfinite(lr) & (np.asarray(lr) > 0)):
        raise ValueError(f"lr must be positive and finite, got lr={lr!r}")
    return x, y, jnp.asarray(lr, jnp.float32), _pint("epochs", epochs)


@functools.partial(jax.jit, static_argnames=("b", "epochs", "order"))
def _ls_sgd(x, y, eta, key, *, b, epochs, order):
    r"""Minibatch SGD on :math:`L(w) = \frac1{2n}\lVert xw-y\rVert^2` from w = 0 (``sampling`` batches)."""
    n, p = x.shape
    H = jnp.matmul(x.T, x, precision=_HI) / n
    w_star = jnp.linalg.solve(H, jnp.matmul(x.T, y, precision=_HI) / n)
    idx, mask = sampling._batches(key, n, b, epochs, order)

    def update(carry, inputs):
        w, w_start, s1, s2 = carry
        i, m = inputs
        r = (jnp.matmul(x[i], w, precision=_HI) - y[i]) * m
        w = w - eta * jnp.matmul(r, x[i], precision=_HI) / jnp.sum(m)
        dw = w - w_start  # moments about the epoch's start: no float32 cancellation in the spread
        return (w, w_start, s1 + dw, s2 + jnp.sum(dw * dw)), None

    def epoch(w, inputs):
        (w, _, s1, s2), _ = jax.lax.scan(update, (w, w, jnp.zeros(p), jnp.zeros(())), inputs)
        m = inputs[0].shape[0]
        return w, (w, s2 / m - jnp.sum((s1 / m) ** 2))

    w0 = jnp.zeros(p)
    _, (ws, spread) = jax.lax.scan(epoch, w0, (idx, mask))
    dw = jnp.concatenate([w0[None], ws]) - w_star[None, :]
    excess = 0.5 * jnp.sum(jnp.matmul(dw, H, precision=_HI) * dw, axis=1)  # exact gap, no cancellation
    r = jnp.matmul(jnp.concatenate([w0[None], ws]), x.T, precision=_HI) - y[None, :]
    return 0.5 * jnp.mean(r * r, axis=1), excess, spread


class BatchVsSGD(NamedTuple):
    b: jax.Array  # (k,) batch sizes
    updates: jax.Array  # (k,) updates per epoch, ⌈n/b⌉: n sample gradients each epoch for every b
    loss: jax.Array  # (k, epochs+1) training loss ½ mean (x w − y)² at the start and after each epoch
    excess: jax.Array  # (k, epochs+1) L(w) − L(w*)


def _reshuffled_runs(x, y, lr, batch_sizes, epochs, key):
    x, y, lr, epochs = _ls_checks(x, y, lr, epochs)
    sizes = _sizes("batch_sizes", batch_sizes, x.shape[0])
    lr = jnp.broadcast_to(lr, (len(sizes),))
    go = functools.partial(_ls_sgd, x, y, key=key, epochs=epochs, order="reshuffle")
    return x.shape[0], sizes, [functools.partial(go, eta=lr[i], b=b) for i, b in enumerate(sizes)]


def batch_vs_sgd(x, y, lr, *, batch_sizes, epochs, key) -> BatchVsSGD:
    r"""Full batch (b = n), minibatch and SGD (b = 1) at equal sample-gradient evaluations (one epoch = n).

    Claim (slides "Incremental update"): after one epoch, n SGD updates have reduced the training error far
    more than one batch update. Least squares on ``x`` (n, p), ``y`` (n,) from w = 0, reshuffled every epoch;
    ``lr`` a rate or one per batch size. Vmappable over ``lr`` and ``key``; wall time: :func:`time_per_epoch`.
    """
    n, sizes, runs = _reshuffled_runs(x, y, lr, batch_sizes, epochs, key)
    loss, excess, _ = zip(*(go() for go in runs))
    updates = jnp.asarray([sampling.n_batches(n, b) for b in sizes], jnp.int32)
    return BatchVsSGD(jnp.asarray(sizes, jnp.int32), updates, jnp.stack(loss), jnp.stack(excess))


def time_per_epoch(x, y, lr, *, batch_sizes, epochs, key, repeats=3) -> np.ndarray:
    """Wall seconds per epoch of :func:`batch_vs_sgd`'s runs, one per batch size (compile excluded, best of
    ``repeats``): the "equal wall time" view, where vectorised minibatches win."""
    _, _, runs = _reshuffled_runs(x, y, lr, batch_sizes, epochs, key)
    repeats = _pint("repeats", repeats)
    jax.block_until_ready([go() for go in runs])  # compile and warm up
    return np.asarray([min(_wall(go) for _ in range(repeats)) for go in runs]) / epochs


def _wall(go):
    t0 = time.perf_counter()
    jax.block_until_ready(go())
    return time.perf_counter() - t0


class Orders(NamedTuple):
    excess: jax.Array  # (orders, seeds, epochs+1) L(w) − L(w*) at the start and at the end of each epoch
    spread: jax.Array  # (orders, seeds, epochs) mean ‖w_t − w̄‖² of the iterates within each epoch


def sampling_orders(x, y, lr, *, epochs, key, seeds=8, batch_size=1, orders=sampling.ORDERS) -> Orders:
    r"""Constant-rate SGD on one least-squares finite sum in each sample order, ``seeds`` runs per order.

    Claims: with a random reshuffle every epoch the end-of-epoch iterates settle in a smaller neighbourhood
    of :math:`w^\star` than with replacement at the same rate (excess ∝ η² or faster vs ∝ η: Gürbüzbalaban,
    Ozdaglar & Parrilo 2021; Mishchenko, Khaled & Richtárik 2020); ``"sorted"`` visits the rows in their
    stored order (store them sorted by x): the iterate drifts through every epoch (a large ``spread``) and
    ends each one biased towards the last samples (identically for every seed: a limit cycle). Batches come
    from ``sampling._batches``, as in training.
    """
    x, y, lr, epochs = _ls_checks(x, y, lr, epochs)
    b = _sizes("batch_size", batch_size, x.shape[0])[0]
    orders = (orders,) if isinstance(orders, str) else tuple(orders)
    if not orders:
        raise ValueError("orders must name at least one of sampling.ORDERS, got orders=()")
    orders = tuple(map(sampling.check_order, orders))
    return _orders(x, y, lr, key, b=b, epochs=epochs, seeds=_pint("seeds", seeds), orders=orders)


@functools.partial(jax.jit, static_argnames=("b", "epochs", "seeds", "orders"))
def _orders(x, y, lr, key, *, b, epochs, seeds, orders):
    keys = jax.random.split(key, seeds)
    runs = [
        jax.vmap(lambda k, o=o: _ls_sgd(x, y, lr, k, b=b, epochs=epochs, order=o)[1:])(keys) for o in orders
    ]
    return Orders(jnp.stack([e for e, _ in runs]), jnp.stack([s for _, s in runs]))

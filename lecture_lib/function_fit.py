r"""1-D function fitting: the "training formulation", "modelling a function" and "empirical risk" slides.

A known target g(x), an input density P(x) and Gaussian noise define the problem; ``sample`` draws the
training pairs, ``expected_loss`` integrates the squared error of any model f under P(x) by composite
Gauss–Legendre quadrature (including the noise variance: E[(f(X) − Y)²] = E[(f(X) − g(X))²] + σ²), and
``empirical_loss`` averages it over a sample. Target, density and noise are data: switching them never
recompiles. ``lecture_lib.data`` re-exports everything here.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks
from lecture_lib._pytree import pytree_dataclass
from lecture_lib.data import Dataset, _key, _n_val

_TARGETS = {  # name: (g, formula for figure titles)
    "sin": (lambda x: jnp.sin(jnp.pi * x), "sin(πx)"),
    "wave": (lambda x: jnp.sin(3 * jnp.pi * x) * jnp.exp(-x * x), "sin(3πx)·exp(−x²)"),
    "bump": (lambda x: jnp.exp(-8 * x * x), "exp(−8x²)"),
    "step": (lambda x: jnp.tanh(5 * x), "tanh(5x)"),
    "cubic": (lambda x: x**3 - 0.5 * x, "x³ − x/2"),
}
# Densities of u = (x - lo) / (hi - lo) on [0, 1]: (pdf of u, sampler of u)
_DENSITIES = {
    "uniform": (jnp.ones_like, lambda k, n: jax.random.uniform(k, (n,))),
    "normal": (  # N(1/2, 1/16) truncated at ±2σ
        lambda u: 4 * jnp.exp(-0.5 * (4 * u - 2) ** 2) / (math.sqrt(2 * math.pi) * math.erf(math.sqrt(2))),
        lambda k, n: (jax.random.truncated_normal(k, -2.0, 2.0, (n,)) + 2) / 4,
    ),
    "beta": (lambda u: 30 * u * (1 - u) ** 4, lambda k, n: _beta25(k, n)),  # Beta(2, 5), dense near lo
}


def _beta25(key, n):
    # G2/(G2 + G5) with Gamma(k) = -sum of k log-uniforms: exact for integer shapes, far faster than gammas
    e = -jnp.log1p(-jax.random.uniform(key, (n, 7)))
    g2 = e[:, 0] + e[:, 1]
    return g2 / (g2 + jnp.sum(e[:, 2:], axis=1))


_BUCKET = 1024  # eager samples of up to this size are prefixes of one compiled draw of this size
TARGETS = tuple(_TARGETS)
DENSITIES = tuple(_DENSITIES)


@functools.cache
def _quadrature(panels: int = 128, order: int = 8):
    """Composite Gauss–Legendre nodes and weights on [0, 1]; robust to the kinks of a ReLU network."""
    t, w = np.polynomial.legendre.leggauss(order)
    left = np.arange(panels)[:, None] / panels
    return (left + (t + 1) / (2 * panels)).ravel(), np.tile(w / (2 * panels), panels)


@pytree_dataclass
class FunctionFit:
    r"""Noisy samples :math:`y = g(x) + \sigma\varepsilon` of a known g, :math:`x \sim P(x)` on [lo, hi].

    All fields are leaves: switching target or density, or moving the noise, never recompiles. The loss is
    the plain squared error (no ½, unlike :func:`lecture_lib.models.squared_error`). ``expected_loss(f)`` is
    :math:`E[(f(X)-Y)^2] = \int (f(x)-g(x))^2 P(x)\,dx + \sigma^2`, by composite Gauss–Legendre quadrature
    (1,024 nodes, exact to float32 for smooth f); ``noisy=False`` drops :math:`\sigma^2`, leaving the slide's
    :math:`E[\text{loss}(f(X), g(X))]`. ``empirical_loss(f, x, y)`` is :math:`\frac1N\sum_i (f(x_i)-y_i)^2`,
    an unbiased estimate of ``expected_loss(f)``. ``f`` maps inputs (m, 1) to outputs (m, 1) or (m,).
    """

    target: jax.Array  # int32 index into TARGETS
    density: jax.Array  # int32 index into DENSITIES
    noise: jax.Array  # sigma
    lo: jax.Array
    hi: jax.Array

    def g(self, x):
        return _g(self, x)

    def pdf(self, x):
        return _pdf(self, x)

    def sample(self, key, n: int):
        """``(x, y)`` with shapes (n, 1) and (n,); ``n`` is static, ``key`` may be traced (vmap over keys).

        Called eagerly with ``n`` ≤ ``_BUCKET``, it draws ``_BUCKET`` pairs and returns the first ``n``: the
        random bits of a draw do not depend on its length (threefry counts up from the start), so every
        such ``n`` shares one compiled sampler, and a smaller sample is a prefix of a larger one.
        """
        key, n = _key(key), _checks.positive_int("n", n, array=False)
        if n >= _BUCKET or any(_checks.is_traced(v) for v in jax.tree.leaves((self, key))):
            return _sample(self, key, n)
        x, y = _sample(self, key, _BUCKET)
        return jax.device_put(np.asarray(x)[:n]), jax.device_put(np.asarray(y)[:n])

    def expected_loss(self, f, *, noisy: bool = True):
        t, w = _quadrature()
        x = self.lo + (self.hi - self.lo) * jnp.asarray(t, jnp.float32)
        weights = (self.hi - self.lo) * jnp.asarray(w, jnp.float32) * self.pdf(x)
        err = jnp.reshape(f(x[:, None]), x.shape) - self.g(x)
        return jnp.sum(weights * err * err) + (self.noise**2 if noisy else 0.0)

    def empirical_loss(self, f, x, y):
        err = jnp.reshape(f(x), y.shape) - y
        return jnp.mean(err * err)

    @property
    def target_name(self) -> str:
        return TARGETS[int(self.target)]

    @property
    def density_name(self) -> str:
        return DENSITIES[int(self.density)]

    @property
    def formula_text(self) -> str:
        return _TARGETS[self.target_name][1]


@jax.jit  # jitted so that eager calls reuse one compiled switch
def _g(p, x):
    return jax.lax.switch(p.target, [v[0] for v in _TARGETS.values()], x)


@jax.jit
def _pdf(p, x):
    u = (x - p.lo) / (p.hi - p.lo)
    density = jax.lax.switch(p.density, [v[0] for v in _DENSITIES.values()], u)
    return jnp.where((u >= 0) & (u <= 1), density / (p.hi - p.lo), 0.0)


@functools.partial(jax.jit, static_argnames="n")
def _sample(p, key, n):
    kx, ke = jax.random.split(key)
    u = jax.lax.switch(p.density, [functools.partial(v[1], n=n) for v in _DENSITIES.values()], kx)
    x = p.lo + (p.hi - p.lo) * u
    return x[:, None], p.g(x) + p.noise * jax.random.normal(ke, (n,))


def function_fit_problem(target="sin", *, density="uniform", noise=0.1, x_range=(-1.0, 1.0)) -> FunctionFit:
    """A :class:`FunctionFit`: ``target`` in :data:`TARGETS`, ``density`` in :data:`DENSITIES`, noise σ."""
    for arg, value, names in (("target", target, TARGETS), ("density", density, DENSITIES)):
        if value not in names:
            raise ValueError(f"{arg} must be one of {', '.join(names)}, got {arg}={value!r}")
    if not (isinstance(x_range, (tuple, list)) and len(x_range) == 2):
        raise TypeError(f"x_range must be a pair (lo, hi), got x_range={x_range!r}")
    lo, hi = (_checks.real(f"x_range[{i}]", v, rule="be finite") for i, v in enumerate(x_range))
    if not (_checks.is_traced(lo) or _checks.is_traced(hi) or float(lo) < float(hi)):
        raise ValueError(f"x_range must satisfy lo < hi, got x_range={x_range!r}")
    return FunctionFit(
        target=jnp.asarray(TARGETS.index(target), jnp.int32),
        density=jnp.asarray(DENSITIES.index(density), jnp.int32),
        noise=_checks.nonnegative("noise", noise),
        lo=lo,
        hi=hi,
    )


@pytree_dataclass
class FunctionFitData(Dataset):
    """A function-fitting sample; ``problem`` (a :class:`FunctionFit`) gives g, P(x) and the expected loss."""

    problem: FunctionFit = None


def function_fit(n, key, *, target="sin", density="uniform", noise=0.1, x_range=(-1.0, 1.0), n_val=None):
    """``n`` training and ``n_val`` (default ``n``) validation samples of :func:`function_fit_problem`."""
    problem = function_fit_problem(target, density=density, noise=noise, x_range=x_range)
    n = _checks.positive_int("n", n, array=False)
    x, y = problem.sample(key, n + _n_val(n_val, n))  # one draw, one compiled sampler per total size
    return FunctionFitData(x[:n], y[:n], x[n:], y[n:], name="function_fit", problem=problem)


# ---- linear and logistic regression with a chosen condition number ----------------------------------------

r"""Two-dimensional test surfaces for optimizer demos.

Every surface is an instance of one pytree class, :class:`Surface`, holding two leaves: ``kind`` (an int32
index into the table of formulas) and ``theta`` (float32 parameters, e.g. the condition number). Evaluation
dispatches with ``lax.switch`` on ``kind``, so choosing another surface in a dropdown, or moving a
condition-number slider, changes data and never compiles a new version of a jitted run.

>>> import lecture_lib as ll
>>> s = ll.surfaces.quadratic(condition=10.0)
>>> float(s(s.minima[0]))
0.0

Plotting facts (``name``, ``bounds``, ``minima``, ``start``, ``formula``) are read outside ``jit``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks
from lecture_lib._pytree import pytree_dataclass

N_THETA = 2  # length of the parameter vector shared by all surfaces


def _quadratic(theta, w):
    # eigenvalue 1 along (cos a, sin a), eigenvalue kappa along (-sin a, cos a)
    kappa, a = theta[0], theta[1]
    u = jnp.cos(a) * w[0] + jnp.sin(a) * w[1]
    v = -jnp.sin(a) * w[0] + jnp.cos(a) * w[1]
    return 0.5 * (u * u + kappa * v * v)


def _rosenbrock(theta, w):
    a, b = theta[0], theta[1]
    return (a - w[0]) ** 2 + b * (w[1] - w[0] ** 2) ** 2


def _beale(theta, w):
    x, y = w[0], w[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _himmelblau(theta, w):
    x, y = w[0], w[1]
    return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2


def _saddle(theta, w):
    # a saddle at the origin (Hessian diag(1, -1)) with two minima beyond it at (0, +-1), value -1/4
    x, y = w[0], w[1]
    return 0.5 * x * x - 0.5 * y * y + 0.25 * y**4


def _rastrigin(theta, w):
    A = theta[0]
    return 2 * A + jnp.sum(w * w - A * jnp.cos(2 * jnp.pi * w))


class _Info(NamedTuple):
    fn: object
    formula: str  # LaTeX, for Markdown cells
    text: str  # plain Unicode, for figure titles (plotly's LaTeX needs MathJax from a CDN)
    bounds: tuple  # ((x_min, x_max), (y_min, y_max))
    start: tuple
    log_contours: bool  # contour levels on a log scale (steep valleys)


_TABLE = {
    "quadratic": _Info(
        _quadratic,
        r"\tfrac12\left(u^2 + \kappa v^2\right),\ (u, v) = R_{-\alpha}\,w",
        "½(u² + κ·v²), (u, v) = w rotated by −α",
        ((-5.0, 5.0), (-5.0, 5.0)),
        (-4.0, 3.0),
        True,
    ),
    "rosenbrock": _Info(
        _rosenbrock,
        r"(a - x)^2 + b\,(y - x^2)^2",
        "(a − x)² + b(y − x²)²",
        ((-2.0, 2.0), (-1.0, 3.0)),
        (-1.2, 1.0),
        True,
    ),
    "beale": _Info(
        _beale,
        r"(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
        "(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
        ((-4.5, 4.5), (-4.5, 4.5)),
        (1.0, 1.5),
        True,
    ),
    "himmelblau": _Info(
        _himmelblau,
        r"(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
        "(x² + y − 11)² + (x + y² − 7)²",
        ((-5.0, 5.0), (-5.0, 5.0)),
        (0.0, 0.0),
        True,
    ),
    "saddle": _Info(
        _saddle,
        r"\tfrac12 x^2 - \tfrac12 y^2 + \tfrac14 y^4",
        "½x² − ½y² + ¼y⁴",
        ((-2.0, 2.0), (-2.0, 2.0)),
        (-1.8, 0.05),
        True,
    ),
    "rastrigin": _Info(
        _rastrigin,
        r"2A + \sum_i \left(w_i^2 - A\cos 2\pi w_i\right)",
        "2A + Σᵢ(wᵢ² − A·cos 2πwᵢ)",
        ((-5.12, 5.12), (-5.12, 5.12)),
        (4.0, 4.5),
        False,
    ),
}
NAMES = tuple(_TABLE)
_BRANCHES = tuple(info.fn for info in _TABLE.values())
_VALUE_AND_GRAD = tuple(jax.value_and_grad(fn, argnums=1) for fn in _BRANCHES)

_HIMMELBLAU_MINIMA = ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126))


@pytree_dataclass
class Surface:
    """A 2-D loss surface: ``s(w)`` is the loss at a length-2 array ``w``."""

    kind: jax.Array  # int32 index into NAMES
    theta: jax.Array  # float32 (N_THETA,) parameters

    def __call__(self, w):
        return _evaluate(self.kind, self.theta, w)

    def value_and_grad(self, w):
        """``(s(w), ∇s(w))`` with one ``lax.switch``: the same numbers as ``jax.value_and_grad(s)(w)``,
        ~10 ns a step faster inside a scan (one conditional per step instead of two)."""
        return _value_and_grad(self.kind, self.theta, w)

    # -- facts for plots and tests; concrete values only (not inside jit) --
    @property
    def name(self) -> str:
        return NAMES[int(self.kind)]

    @property
    def info(self) -> _Info:
        return _TABLE[self.name]

    @property
    def formula(self) -> str:
        return self.info.formula

    @property
    def formula_text(self) -> str:
        return self.info.text

    @property
    def bounds(self) -> tuple:
        return self.info.bounds

    @property
    def start(self) -> np.ndarray:
        return np.asarray(self.info.start, np.float32)

    @property
    def log_contours(self) -> bool:
        return self.info.log_contours

    @property
    def minima(self) -> np.ndarray:
        """Global minimisers, shape (k, 2)."""
        name, theta = self.name, np.asarray(self.theta, np.float64)
        if name == "rosenbrock":
            pts = [(theta[0], theta[0] ** 2)]
        elif name == "beale":
            pts = [(3.0, 0.5)]
        elif name == "himmelblau":
            pts = _HIMMELBLAU_MINIMA
        elif name == "saddle":
            pts = [(0.0, 1.0), (0.0, -1.0)]
        else:  # quadratic, rastrigin
            pts = [(0.0, 0.0)]
        return np.asarray(pts, np.float32)

    @property
    def min_value(self) -> float:
        """The loss at the global minima."""
        return -0.25 if self.name == "saddle" else 0.0

    def grid(self, n: int = 121):
        """Contour grid over ``bounds``: ``(xs, ys, Z)`` with ``Z[i, j] = s((xs[j], ys[i]))``."""
        n = _checks.positive_int("n", n, array=False)
        (x0, x1), (y0, y1) = self.bounds
        xs = np.linspace(x0, x1, n, dtype=np.float32)
        ys = np.linspace(y0, y1, n, dtype=np.float32)
        return xs, ys, np.asarray(_grid(self, xs, ys))


@jax.jit
def _evaluate(kind, theta, w):
    # jitted so that eager calls, and eager jax.grad of them, reuse one compiled switch
    return jax.lax.switch(kind, _BRANCHES, theta, w)


@jax.jit
def _value_and_grad(kind, theta, w):
    return jax.lax.switch(kind, _VALUE_AND_GRAD, theta, w)


@jax.jit
def _grid(surface, xs, ys):
    row = jax.vmap(lambda x, y: surface(jnp.stack([x, y])), in_axes=(0, None))
    return jax.vmap(lambda y: row(xs, y))(ys)


def _make(name: str, *theta) -> Surface:
    padded = list(theta) + [0.0] * (N_THETA - len(theta))
    return Surface(
        kind=jnp.asarray(NAMES.index(name), jnp.int32),
        theta=jnp.stack([jnp.asarray(t, jnp.float32) for t in padded]),
    )


def quadratic(condition=50.0, angle=0.0) -> Surface:
    r"""Convex quadratic :math:`\tfrac12 w^\top H w` with eigenvalues 1 and ``condition``.

    ``angle`` (radians) rotates the eigenvectors: the eigenvalue 1 lies along :math:`(\cos\alpha, \sin\alpha)`
    and the eigenvalue :math:`\kappa` along :math:`(-\sin\alpha, \cos\alpha)`. Minimum 0 at the origin.
    """
    kappa = _checks.real("condition", condition, lo=1.0, rule="be finite and at least 1")
    a = _checks.real("angle", angle, rule="be finite")
    return _make("quadratic", kappa, a)


def rosenbrock(a=1.0, b=100.0) -> Surface:
    """Rosenbrock's banana valley; minimum 0 at (a, a²)."""
    return _make("rosenbrock", _checks.real("a", a, rule="be finite"), _checks.positive("b", b))


def beale() -> Surface:
    """Beale's function; minimum 0 at (3, 0.5)."""
    return _make("beale")


def himmelblau() -> Surface:
    """Himmelblau's function; four minima of value 0."""
    return _make("himmelblau")


def saddle() -> Surface:
    """A saddle at the origin with two minima beyond it, at (0, ±1) with value −1/4."""
    return _make("saddle")


def rastrigin(A=10.0) -> Surface:
    """Rastrigin's function: a bowl covered in local minima; global minimum 0 at the origin."""
    return _make("rastrigin", _checks.positive("A", A))


SURFACES: dict[str, Surface] = {
    "quadratic": quadratic(),
    "rosenbrock": rosenbrock(),
    "beale": beale(),
    "himmelblau": himmelblau(),
    "saddle": saddle(),
    "rastrigin": rastrigin(),
}

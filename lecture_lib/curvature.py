r"""Curvature of a loss: gradient, Hessian, Hessian-vector products, spectrum, Newton step, Taylor models.

The recap slides on second-order optimization in code. For a scalar function ``f`` of ``w``:

.. math::
    f(w) \approx f(w_0) + g^\top (w - w_0) + \tfrac12 (w - w_0)^\top H (w - w_0),
    \qquad g = \nabla f(w_0),\ H = \nabla^2 f(w_0),

and the Newton step jumps to the minimum of that quadratic model, :math:`\Delta w = -H^{-1} g`.

>>> import lecture_lib as ll
>>> s = ll.surfaces.quadratic(condition=10.0)
>>> float(condition_number(s, s.start))
10.0

Every function is pure and works under ``jit`` and ``vmap``. ``w`` is a 1-D array or any pytree of arrays;
pytrees are flattened with ``jax.flatten_util.ravel_pytree``, so ``hessian`` and ``spectrum`` speak of the
flat vector (``n`` = total number of entries), while ``gradient``, ``hvp`` and ``newton_step`` return the
structure of ``w``. When ``f`` is itself a pytree of arrays (a ``Surface``), each function is compiled once
and reused for every surface and parameter value, so calling it from a notebook costs microseconds; for a
plain Python function it runs as written (wrap the caller in ``jax.jit`` for speed). ``hessian`` forms all
:math:`n^2` entries: meant for the 2-D surfaces and small models (the slide's point: at a million weights it
is out of reach). ``hvp`` never forms :math:`H`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

# Full float32 matrix products: on GPUs the default precision may round float32 matmuls to TF32 (10 bits).
_HI = jax.lax.Precision.HIGHEST


def _flat(f: Callable, w):
    """``f`` as a function of the flat vector, the flat ``w`` and the map back to ``w``'s structure."""
    w_flat, unravel = ravel_pytree(w)
    return (lambda x: f(unravel(x))), w_flat, unravel


def _is_surface(f) -> bool:
    leaves = jax.tree.leaves(f)
    return bool(leaves) and all(isinstance(x, jax.Array) for x in leaves)


def _concrete(*args) -> bool:
    """Every leaf is a value (no tracer) and ``w`` (the first of ``args``) is one flat float vector."""
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(args)):
        return False
    w = args[0]
    return isinstance(w, (jax.Array, np.ndarray)) and w.ndim == 1 and jnp.issubdtype(w.dtype, jnp.floating)


def _compiled(impl, from_derivatives=None):
    """Run ``impl(f, ...)`` under one module-level ``jit`` when ``f`` is a pytree of arrays (a ``Surface``).

    Eager dispatch of a surface's ``lax.switch`` under ``jax.hessian`` compiles its branches on every call
    (seconds); passed as a traced argument, the surface's parameters are data and one compile serves all.
    With ``from_derivatives``, a call on concrete values (a flat ``w``, no tracers) takes f, g and H from the
    one shared compiled ``_derivatives`` and finishes the small dense algebra in NumPy: one compile serves
    ``gradient``, ``hessian``, ``spectrum``, ``condition_number`` and ``newton_step`` alike.
    """
    jitted = jax.jit(impl)

    @functools.wraps(impl)
    def wrapper(f, *args, **kwargs):
        if _is_surface(f):
            if from_derivatives is not None and _concrete(*args, kwargs):
                w = args[0]
                return from_derivatives(*_derivatives(f, w), w.dtype, *args[1:], **kwargs)
            return jitted(f, *args, **kwargs)
        return impl(f, *args, **kwargs)

    return wrapper


@jax.jit
def _derivatives(f, w):
    """f(w), ∇f(w) and ∇²f(w) of a surface at a flat ``w``, in one compiled program."""
    return (*jax.value_and_grad(f)(w), jax.hessian(f)(w))


def _eigh(H) -> tuple[np.ndarray, np.ndarray]:
    H = np.asarray(H, np.float64)
    return np.linalg.eigh(0.5 * (H + H.T))


def _gradient_of(f0, g, H, dtype, *args, **kwargs):
    return g


def _hessian_of(f0, g, H, dtype, *args, **kwargs):
    return H


def _spectrum_of(f0, g, H, dtype):
    lam, Q = _eigh(H)
    return jax.device_put(lam.astype(dtype)), jax.device_put(Q.astype(dtype))


def _condition_number_of(f0, g, H, dtype):
    lam = np.abs(_eigh(H)[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return jax.device_put(np.asarray(lam.max() / lam.min(), dtype))


def _newton_step_of(f0, g, H, dtype, damping=0.0):
    A = np.asarray(H, np.float64) + float(damping) * np.eye(len(g))
    try:
        step = -np.linalg.solve(A, np.asarray(g, np.float64))
    except np.linalg.LinAlgError:  # singular: what XLA's LU gives, a non-finite step
        step = np.full(len(g), np.nan)
    return jax.device_put(step.astype(dtype))


@functools.partial(_compiled, from_derivatives=_gradient_of)
def gradient(f: Callable, w):
    r"""The gradient :math:`g = \nabla f(w)`, with the structure of ``w``."""
    return jax.grad(f)(w)


@functools.partial(_compiled, from_derivatives=_hessian_of)
def hessian(f: Callable, w) -> jax.Array:
    r"""The dense Hessian :math:`H_{ij} = \partial^2 f / \partial w_i \partial w_j` of the flat ``w``, (n, n).

    Forward-over-reverse (``jax.jacfwd(jax.grad(f))``): ``n`` Hessian-vector products, one per column.
    """
    f_flat, w_flat, _ = _flat(f, w)
    return jax.hessian(f_flat)(w_flat)


@_compiled
def hvp(f: Callable, w, v):
    r"""The Hessian-vector product :math:`H v = \nabla^2 f(w)\, v` without forming :math:`H`.

    Forward-over-reverse: the directional derivative of the gradient,
    :math:`H v = \frac{d}{d\epsilon} \nabla f(w + \epsilon v)\big|_{\epsilon=0}`, costs about as much as two
    gradients, whatever ``n``. ``v`` has the structure of ``w``, and so does the result.
    """
    return jax.jvp(jax.grad(f), (w,), (v,))[1]


@functools.partial(_compiled, from_derivatives=_spectrum_of)
def spectrum(f: Callable, w) -> tuple[jax.Array, jax.Array]:
    r"""Eigenvalues (ascending) and eigenvectors (as columns) of the Hessian at ``w``.

    :math:`H = Q \Lambda Q^\top`, from ``eigh`` of the symmetrised :math:`\tfrac12 (H + H^\top)` (the
    Hessian is symmetric; automatic differentiation leaves rounding-level asymmetry). Returns ``(lam, Q)``
    with ``H @ Q[:, i] = lam[i] * Q[:, i]``.
    """
    H = hessian(f, w)
    return jnp.linalg.eigh(0.5 * (H + H.T))


@functools.partial(_compiled, from_derivatives=_condition_number_of)
def condition_number(f: Callable, w) -> jax.Array:
    r"""Condition number of the Hessian at ``w``: :math:`\kappa = \max_i |\lambda_i| / \min_i |\lambda_i|`.

    For a positive-definite Hessian (near a minimum) this is the usual :math:`\lambda_{\max}/\lambda_{\min}`:
    how much more the loss curves along the steepest direction than along the flattest, i.e. how elongated
    the contour ellipses are and how slowly gradient descent converges. For an indefinite Hessian (a saddle)
    the magnitudes still measure the spread of curvatures, but the point is not a minimum of the quadratic
    model, and a large or small :math:`\kappa` there says nothing about convergence to it. A singular
    Hessian gives ``inf``.
    """
    lam = jnp.abs(spectrum(f, w)[0])
    return jnp.max(lam) / jnp.min(lam)


@functools.partial(_compiled, from_derivatives=_newton_step_of)
def newton_step(f: Callable, w, damping=0.0):
    r"""The (damped) Newton step :math:`\Delta w = -(H + \lambda I)^{-1} g` at ``w``; ``damping`` is λ.

    Solves the linear system :math:`(H + \lambda I)\,\Delta w = -g` (never inverts). :math:`w + \Delta w` is
    the stationary point of the quadratic model ``taylor2(f, w)`` (plus :math:`\tfrac{\lambda}{2}
    \|\Delta w\|^2`): the minimum when :math:`H + \lambda I` is positive definite, otherwise a saddle or a
    maximum of the model. Returned with the structure of ``w``.
    """
    f_flat, w_flat, unravel = _flat(f, w)
    g = jax.grad(f_flat)(w_flat)
    H = jax.hessian(f_flat)(w_flat)
    A = H + damping * jnp.eye(w_flat.size, dtype=H.dtype)
    return unravel(-jnp.linalg.solve(A, g))


@functools.partial(_compiled, from_derivatives=lambda f0, g, H, dtype: (f0, g))
def _value_gradient(f, w0):
    f_flat, w0_flat, _ = _flat(f, w0)
    return jax.value_and_grad(f_flat)(w0_flat)


@functools.partial(_compiled, from_derivatives=lambda f0, g, H, dtype: (f0, g, H))
def _value_gradient_hessian(f, w0):
    f_flat, w0_flat, _ = _flat(f, w0)
    return (*jax.value_and_grad(f_flat)(w0_flat), jax.hessian(f_flat)(w0_flat))


def taylor1(f: Callable, w0) -> Callable:
    r"""The first-order (linear) Taylor model of ``f`` at ``w0``, as a function of ``w``.

    .. math:: f_1(w) = f(w_0) + g^\top (w - w_0), \qquad g = \nabla f(w_0)

    :math:`f(w_0)` and :math:`g` are computed once, here; the returned function is cheap and vmappable over
    ``w`` (evaluate it on a plotting grid with ``jax.vmap``).
    """
    f0, g = _value_gradient(f, w0)
    w0_flat = ravel_pytree(w0)[0]

    def model(w):
        dw = ravel_pytree(w)[0] - w0_flat
        return f0 + jnp.dot(g, dw, precision=_HI)

    return model


def taylor2(f: Callable, w0) -> Callable:
    r"""The second-order (quadratic) Taylor model of ``f`` at ``w0``, as a function of ``w``.

    .. math:: f_2(w) = f(w_0) + g^\top (w - w_0) + \tfrac12 (w - w_0)^\top H (w - w_0)

    with :math:`g = \nabla f(w_0)` and :math:`H = \nabla^2 f(w_0)` computed once, here; the returned
    function is vmappable over ``w``. Its stationary point is :math:`w_0` + ``newton_step(f, w0)``.
    """
    f0, g, H = _value_gradient_hessian(f, w0)
    w0_flat = ravel_pytree(w0)[0]

    def model(w):
        dw = ravel_pytree(w)[0] - w0_flat
        return (
            f0
            + jnp.dot(g, dw, precision=_HI)
            + 0.5 * jnp.dot(dw, jnp.dot(H, dw, precision=_HI), precision=_HI)
        )

    return model

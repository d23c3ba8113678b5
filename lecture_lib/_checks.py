"""Argument validation shared by the factories.

Factories validate eagerly, where the user passes the number, and store it as a float32 (or int32) JAX array
so that ``lr=1`` and ``lr=0.5`` share one compiled version. A value that is already a JAX tracer (a factory
called inside ``jax.vmap`` or ``jax.jit``) cannot be inspected; it is cast and passed through unchecked.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np


def is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _concrete_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.ndarray, jax.Array)):
        raise TypeError(f"{name} must be a real number, got {name}={value!r}")
    if np.ndim(value) != 0:
        raise TypeError(f"{name} must be a scalar, got an array of shape {np.shape(value)}")
    return float(value)


def real(
    name: str, value, *, lo=None, hi=None, lo_open=False, hi_open=False, rule: str | None = None, device=True
):
    """A float32 scalar in the interval given by ``lo``/``hi`` (open or closed ends); finite always.

    A device array by default; ``device=False`` gives a NumPy float32 (for a value checked on every call of a
    jitted function: no eager device put, ~20 us)."""
    if is_traced(value):
        return jnp.asarray(value, jnp.float32)
    x = _concrete_float(name, value)
    ok = math.isfinite(x)
    if ok and lo is not None:
        ok = x > lo if lo_open else x >= lo
    if ok and hi is not None:
        ok = x < hi if hi_open else x <= hi
    if not ok:
        if rule is None:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            lo_s = "-inf" if lo is None else f"{lo:g}"
            hi_s = "inf" if hi is None else f"{hi:g}"
            rule = f"be finite and in {left}{lo_s}, {hi_s}{right}"
        raise ValueError(f"{name} must {rule}, got {name}={value!r}")
    # a device array: a jitted call then takes it as is, with no host-to-device copy per call
    return jnp.asarray(x, jnp.float32) if device else np.float32(x)


def positive(name: str, value):
    return real(name, value, lo=0.0, lo_open=True, rule="be positive and finite")


def nonnegative(name: str, value, *, device=True):
    return real(name, value, lo=0.0, rule="be non-negative and finite", device=device)


def unit_interval(name: str, value):
    """A decay rate or momentum coefficient: in [0, 1)."""
    return real(name, value, lo=0.0, hi=1.0, hi_open=True, rule="be in [0, 1)")


def positive_int(name: str, value, *, array: bool = True):
    """A positive integer: an int32 array (traced, no recompile), or with ``array=False`` a static int."""
    if is_traced(value):
        if not array:
            raise TypeError(f"{name} sets a shape and must be a Python int, not a traced value")
        return jnp.asarray(value, jnp.int32)
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {name}={value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
    return jnp.asarray(int(value), jnp.int32) if array else int(value)


def nonnegative_int(name: str, value):
    if is_traced(value):
        return jnp.asarray(value, jnp.int32)
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer, got {name}={value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {name}={value!r}")
    return jnp.asarray(int(value), jnp.int32)

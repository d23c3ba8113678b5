"""Immutable pytree dataclasses: the one mechanism behind "hyperparameters are data".

Optimizers, schedules and surfaces are frozen dataclasses registered as pytrees. Their ordinary fields are
leaves (float32/int32 arrays): traced inside ``jit``, so changing their values never recompiles. Fields made
with :func:`static_field` set a shape or a code path (L-BFGS memory, Nesterov on/off) and are part of the
tree structure: changing them compiles a new version, as it must.
"""

from __future__ import annotations

import dataclasses

import jax


def pytree_dataclass(cls):
    """Make ``cls`` a frozen dataclass registered as a pytree."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    return jax.tree_util.register_dataclass(cls)


def static_field(**kwargs):
    """A dataclass field that is tree structure (static under jit), not a leaf."""
    return dataclasses.field(metadata={"static": True}, **kwargs)

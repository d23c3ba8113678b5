"""Immutable pytree dataclasses: the one mechanism behind "hyperparameters are data".

Optimizers, schedules and surfaces are frozen dataclasses registered as pytrees. Their ordinary fields are
leaves (float32/int32 arrays): traced inside ``jit``, so changing their values never recompiles. Fields made
with :func:`static_field` set a shape or a code path (L-BFGS memory, Nesterov on/off) and are part of the
tree structure: changing them compiles a new version, as it must.

The class itself is part of the structure's auxiliary data. ``jax.tree_util.register_dataclass`` does not do
that: with it, the structures of two classes with the same fields (``constant(lr)`` and ``inverse_sqrt(lr)``,
``adagrad(lr, eps)`` and ``newton(lr, damping)``) compare equal, and ``jit`` could run one's compiled code
for the other (it did, in a test, whenever their hashes met in the cache).
"""

from __future__ import annotations

import dataclasses

import jax


def pytree_dataclass(cls):
    """Make ``cls`` a frozen dataclass registered as a pytree whose structure includes the class."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    data = tuple(f.name for f in fields if not f.metadata.get("static"))
    meta = tuple(f.name for f in fields if f.metadata.get("static"))

    def flatten_with_keys(obj):
        children = [(jax.tree_util.GetAttrKey(name), getattr(obj, name)) for name in data]
        return children, (cls, *(getattr(obj, name) for name in meta))

    def unflatten(aux, children):
        obj = object.__new__(cls)  # no __init__: children may be tracers or placeholders
        for name, value in zip(data, children, strict=True):
            object.__setattr__(obj, name, value)
        for name, value in zip(meta, aux[1:], strict=True):
            object.__setattr__(obj, name, value)
        return obj

    jax.tree_util.register_pytree_with_keys(
        cls,
        flatten_with_keys,
        unflatten,
        flatten_func=lambda obj: (
            [getattr(obj, name) for name in data],
            (cls, *(getattr(obj, name) for name in meta)),
        ),
    )
    return cls


def static_field(**kwargs):
    """A dataclass field that is tree structure (static under jit), not a leaf."""
    return dataclasses.field(metadata={"static": True}, **kwargs)

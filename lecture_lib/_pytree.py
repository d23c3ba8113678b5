"""Immutable pytree dataclasses: the one mechanism behind "hyperparameters are data".

Optimizers, schedules and surfaces are frozen dataclasses registered as pytrees. Their ordinary fields are
leaves (float32/int32 arrays): traced inside ``jit``, so changing their values never recompiles. Fields made
with :func:`static_field` set a shape or a code path (L-BFGS memory, Nesterov on/off) and are part of the
tree structure: changing them compiles a new version, as it must.

Registration is ``jax.tree_util.register_dataclass``, which jaxlib flattens in C++: with the earlier
registration by Python callbacks, flattening an optimizer and a surface cost ~4-8 µs of each ``ll.run`` call
(a fifth of it). One more static field, ``pytree_class`` (keyword-only, defaulting to the class itself),
keeps classes apart: jaxlib's equality of dataclass nodes compares field names and static values but not
the class, so the structures of ``constant(lr)`` and ``inverse_sqrt(lr)``, or ``adagrad(lr, eps)`` and
``newton(lr, damping)``, would compare equal, and ``jit`` could run one's compiled code for the other (it
did, in a test, whenever their hashes met in the cache).
"""

from __future__ import annotations

import dataclasses

import jax

_CLASS_FIELD = "pytree_class"


def pytree_dataclass(cls):
    """Make ``cls`` a frozen dataclass registered as a pytree whose structure includes the class."""
    annotations = dict(cls.__dict__.get("__annotations__", {}))
    annotations[_CLASS_FIELD] = "type"
    cls.__annotations__ = annotations
    setattr(
        cls,
        _CLASS_FIELD,
        dataclasses.field(default=cls, kw_only=True, repr=False, compare=False, metadata={"static": True}),
    )
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    jax.tree_util.register_dataclass(
        cls,
        data_fields=[f.name for f in fields if not f.metadata.get("static")],
        meta_fields=[f.name for f in fields if f.metadata.get("static")],
    )
    return cls


def static_field(**kwargs):
    """A dataclass field that is tree structure (static under jit), not a leaf."""
    return dataclasses.field(metadata={"static": True}, **kwargs)

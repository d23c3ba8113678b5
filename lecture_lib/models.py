r"""Models from plain functions, per-sample losses, accuracy and the weight penalty.

A model is a pair of pure functions, as in ``jax.example_libraries.stax``: ``params = model.init(key)`` and
``outputs = model.apply(params, x)``. Parameters are a list of layers ``[{"W": W_1, "b": b_1}, ...]``
with ``W_l`` of shape (fan_in, fan_out), so a layer is :math:`h \mapsto h W + b` on a row vector ``h``.

>>> import jax, lecture_lib as ll
>>> model = ll.models.mlp([64, 50, 10])
>>> params = model.init(jax.random.key(0))
>>> model.apply(params, jax.numpy.zeros((32, 64))).shape
(32, 10)

Losses are per sample (shape (batch,)); a training loop takes their mean.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers

import jax
import jax.numpy as jnp

from lecture_lib import _checks

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}


@dataclasses.dataclass(frozen=True)
class Model:
    r"""A fully connected network with layer widths ``sizes``; hashable, so it can be a static jit argument.

    ``init_scale=None`` initialises like PyTorch's ``nn.Linear``: W and b uniform in
    :math:`\pm 1/\sqrt{\text{fan\_in}}`. A number gives cs231n's ``init_scale * randn`` weights, zero biases.
    """

    sizes: tuple[int, ...]
    activation: str = "relu"
    init_scale: float | None = None

    def init(self, key) -> list[dict[str, jax.Array]]:
        # One compiled program per (sizes, kind): the scale is data, the activation irrelevant, so models that
        # differ only in them share it, and an eager call is one dispatch (not one compile per weight shape).
        if self.init_scale is None:
            return _init(self.sizes, True, key, 1.0)
        return _init(self.sizes, False, key, self.init_scale)

    @functools.partial(jax.jit, static_argnums=0)  # eager calls reuse one compiled version per shape
    def apply(self, params, x):
        """Outputs for one example ``x`` of shape (d_in,) or a batch (..., d_in); the last layer is linear."""
        act = ACTIVATIONS[self.activation]

        def one(h):  # written for a single example; vmap maps it over the batch
            for layer in params[:-1]:
                h = act(h @ layer["W"] + layer["b"])
            return h @ params[-1]["W"] + params[-1]["b"]

        for _ in range(x.ndim - 1):
            one = jax.vmap(one)
        return one(x)

    @property
    def d_in(self) -> int:
        return self.sizes[0]

    @property
    def d_out(self) -> int:
        return self.sizes[-1]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init(sizes, uniform, key, scale):
    """The layers of ``Model(sizes).init(key)``: PyTorch's uniform init if ``uniform``, else scale·randn.

    Each weight matrix is drawn flat and reshaped: the same numbers as drawing it (fan_in, fan_out) (the
    random bits are counted over the flattened shape either way; tests/test_models.py checks it), but a 1-D
    draw compiles about 3x faster. ``scale`` is traced: 0.01 and 1e-4 share one compiled version.
    """
    params = []
    for k, fan_in, fan_out in zip(jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:]):
        kW, kb = jax.random.split(k)
        if uniform:
            bound = 1 / math.sqrt(fan_in)
            W = jax.random.uniform(kW, (fan_in * fan_out,), minval=-bound, maxval=bound)
            b = jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound)
        else:
            W = scale * jax.random.normal(kW, (fan_in * fan_out,))
            b = jnp.zeros((fan_out,))
        params.append({"W": W.reshape(fan_in, fan_out), "b": b})
    return params


def mlp(sizes, *, activation="relu", init_scale=None) -> Model:
    """A multilayer perceptron, e.g. ``mlp([64, 50, 10])``: input 64, one hidden layer of 50, 10 outputs."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
        raise TypeError(f"sizes must be a sequence of at least two layer widths, got sizes={sizes!r}")
    if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"sizes must be positive integers, got sizes={sizes!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got activation={activation!r}")
    if init_scale is not None:
        _checks.positive("init_scale", init_scale)
        init_scale = float(init_scale)  # a Model is hashable; init passes the scale as data
    return Model(tuple(int(s) for s in sizes), activation, init_scale)


def linear(d_in, d_out, *, init_scale=None) -> Model:
    """The linear model :math:`x \\mapsto xW + b`: an ``mlp`` without hidden layers."""
    return mlp([d_in, d_out], init_scale=init_scale)


def softmax_cross_entropy(logits, y):
    r"""Per-sample cross-entropy :math:`-\log\operatorname{softmax}(s)_y = \operatorname{logsumexp}(s) - s_y`.

    ``logits`` (batch, classes), ``y`` int class indices (batch,); returns (batch,). Stable for any logits.
    """
    # shift by the max first: lse - s_y then loses no digits to a large common offset
    s = logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    # the label's entry by comparison, not take_along_axis: its gradient is then a select, not a scatter
    classes = jnp.arange(s.shape[-1]).reshape((1,) * (s.ndim - 1) + (-1,))
    s_y = jnp.sum(jnp.where(y[..., None] == classes, s, 0.0), axis=-1)
    return jax.nn.logsumexp(s, axis=-1) - s_y


def squared_error(pred, y):
    r"""Per-sample :math:`\tfrac12\lVert \hat y - y\rVert^2`, summed over output dimensions, shape (batch,).

    The ½ matches Wilson et al.'s :math:`\tfrac12\lVert Xw-y\rVert^2`; the gradient is :math:`\hat y - y`.
    ``y`` may have shape (batch,) for a (batch, 1) prediction.
    """
    if y.size != pred.size:
        raise ValueError(
            f"pred and y must hold the same number of values, got shapes {pred.shape} and {y.shape}"
        )
    r = pred - jnp.reshape(y, pred.shape)
    return 0.5 * jnp.sum(jnp.reshape(r * r, (pred.shape[0], -1)), axis=-1)


def accuracy(logits, y):
    """Fraction of samples whose largest logit is the label."""
    return jnp.mean(jnp.argmax(logits, axis=-1) == y)


def l2(params):
    r""":math:`R(W) = \tfrac12\sum_l \lVert W_l\rVert^2` over the weight matrices only, not the biases.

    ``params`` is a model's list of layers, or a single weight array (then all of it is penalised).
    """
    if isinstance(params, jax.Array):
        return 0.5 * jnp.sum(params * params)
    return 0.5 * sum(jnp.sum(layer["W"] * layer["W"]) for layer in params)


#: Per-sample losses by name, for ``training.fit(..., loss=NAME)``.
LOSSES = {"cross_entropy": softmax_cross_entropy, "squared_error": squared_error}

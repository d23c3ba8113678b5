r"""First-order optimizers as small immutable pytrees.

An optimizer is a frozen dataclass whose fields are its hyperparameters. The fields are pytree *leaves*
(float32 arrays), so an optimizer passed into a jitted function is data: moving a learning-rate slider
changes numbers, not code, and nothing is compiled again. Each optimizer has two pure methods, in the style
of optax and ``jax.example_libraries.optimizers``::

    opt = ll.optimizers.adam(lr=1e-3)
    state = opt.init(params)                          # params: any pytree of float arrays
    params, state = opt.update(grads, state, params)  # one step

Every factory gives the same numbers as the PyTorch optimizer named in its docstring (tested step by step).
Local names are the lecture's symbols: ``w`` weights, ``g`` gradient, ``eta`` learning rate, ``m``/``v``
first/second moment, ``b`` momentum buffer, ``t`` step count.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from lecture_lib import _checks
from lecture_lib._pytree import pytree_dataclass, static_field

Params = Any  # a pytree of float arrays


class Optimizer:
    """Common interface. Subclasses define ``init`` and ``update`` with the formulas of the method."""

    #: Second-order methods need the objective itself, not only its gradient (``run`` and ``fit`` pass it).
    needs_objective: ClassVar[bool] = False
    #: Display name used in figures and logs.
    label: ClassVar[str] = "optimizer"

    lr: jax.Array

    def init(self, params: Params):
        raise NotImplementedError

    def update(self, grads: Params, state, params: Params, *, objective=None):
        raise NotImplementedError

    def with_lr(self, lr) -> Optimizer:
        """The same optimizer with another learning rate (used by schedules, inside jit: no checks)."""
        return dataclasses.replace(self, lr=jnp.asarray(lr, jnp.float32))


def _zeros_like(params):
    return jax.tree.map(jnp.zeros_like, params)


class EmptyState(NamedTuple):
    """Plain gradient descent keeps no state."""


class MomentumState(NamedTuple):
    b: Params  # velocity buffer, PyTorch's ``momentum_buffer``


class AdagradState(NamedTuple):
    G: Params  # running sum of squared gradients


class RMSPropState(NamedTuple):
    v: Params  # exponential moving average of squared gradients


class AdamState(NamedTuple):
    t: jax.Array  # number of updates done so far (int32)
    m: Params  # first-moment estimate
    v: Params  # second-moment estimate


@pytree_dataclass
class SGD(Optimizer):
    r"""Gradient descent, :math:`w \leftarrow w - \eta\, g`. Same numbers as ``torch.optim.SGD(lr=lr)``."""

    label: ClassVar[str] = "SGD"
    lr: jax.Array

    def init(self, params):
        return EmptyState()

    def update(self, grads, state, params, *, objective=None):
        eta = self.lr
        return jax.tree.map(lambda w, g: w - eta * g, params, grads), state


@pytree_dataclass
class Momentum(Optimizer):
    r"""Heavy-ball momentum in PyTorch's form.

    .. math:: b \leftarrow \beta b + g, \qquad w \leftarrow w - \eta\, b

    Same numbers as ``torch.optim.SGD(lr=lr, momentum=beta)``; with ``nesterov=True`` the step uses the
    look-ahead :math:`g + \beta b` instead of :math:`b` (``torch.optim.SGD(..., nesterov=True)``).
    """

    lr: jax.Array
    beta: jax.Array
    nesterov: bool = static_field(default=False)

    @property
    def label(self) -> str:
        return "Nesterov" if self.nesterov else "momentum"

    def init(self, params):
        return MomentumState(b=_zeros_like(params))

    def update(self, grads, state, params, *, objective=None):
        eta, beta = self.lr, self.beta
        b = jax.tree.map(lambda b, g: beta * b + g, state.b, grads)
        if self.nesterov:
            step = jax.tree.map(lambda g, b: g + beta * b, grads, b)
        else:
            step = b
        return jax.tree.map(lambda w, d: w - eta * d, params, step), MomentumState(b)


@pytree_dataclass
class Adagrad(Optimizer):
    r"""AdaGrad (Duchi et al., 2011) in PyTorch's form.

    .. math:: G \leftarrow G + g^2, \qquad w \leftarrow w - \eta\, g / (\sqrt{G} + \epsilon)

    Same numbers as ``torch.optim.Adagrad(lr=lr, eps=eps)``.
    """

    label: ClassVar[str] = "AdaGrad"
    lr: jax.Array
    eps: jax.Array

    def init(self, params):
        return AdagradState(G=_zeros_like(params))

    def update(self, grads, state, params, *, objective=None):
        eta, eps = self.lr, self.eps
        G = jax.tree.map(lambda G, g: G + g * g, state.G, grads)
        w = jax.tree.map(lambda w, g, G: w - eta * g / (jnp.sqrt(G) + eps), params, grads, G)
        return w, AdagradState(G)


@pytree_dataclass
class RMSProp(Optimizer):
    r"""RMSProp (Hinton, Coursera lecture 6e) in PyTorch's form.

    .. math:: v \leftarrow \rho v + (1-\rho) g^2, \qquad w \leftarrow w - \eta\, g / (\sqrt{v} + \epsilon)

    Same numbers as ``torch.optim.RMSprop(lr=lr, alpha=decay, eps=eps)``.
    """

    label: ClassVar[str] = "RMSProp"
    lr: jax.Array
    decay: jax.Array
    eps: jax.Array

    def init(self, params):
        return RMSPropState(v=_zeros_like(params))

    def update(self, grads, state, params, *, objective=None):
        eta, rho, eps = self.lr, self.decay, self.eps
        v = jax.tree.map(lambda v, g: rho * v + (1 - rho) * g * g, state.v, grads)
        w = jax.tree.map(lambda w, g, v: w - eta * g / (jnp.sqrt(v) + eps), params, grads, v)
        return w, RMSPropState(v)


@pytree_dataclass
class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), and AdamW (Loshchilov & Hutter, 2019) when ``weight_decay > 0``.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        \hat m = \frac{m}{1-\beta_1^t}, \quad \hat v = \frac{v}{1-\beta_2^t}, \quad
        w \leftarrow (1 - \eta\lambda) w - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)

    Same numbers as ``torch.optim.Adam(lr=lr, betas=(b1, b2), eps=eps)`` and, with the decoupled weight
    decay :math:`\lambda`, ``torch.optim.AdamW(..., weight_decay=weight_decay)``. ``bias_correction=False``
    drops the two hats (a teaching switch: with the default betas the first step is
    :math:`(1-\beta_1)/\sqrt{1-\beta_2} \approx 3.2` times too long, and m, v stay biased toward 0 early on).
    """

    label: ClassVar[str] = "Adam"
    lr: jax.Array
    b1: jax.Array
    b2: jax.Array
    eps: jax.Array
    weight_decay: jax.Array
    bias_correction: bool = static_field(default=True)

    def init(self, params):
        return AdamState(t=jnp.zeros((), jnp.int32), m=_zeros_like(params), v=_zeros_like(params))

    def update(self, grads, state, params, *, objective=None):
        eta, b1, b2, eps, lam = self.lr, self.b1, self.b2, self.eps, self.weight_decay
        t = state.t + 1
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.m, grads)  # first moment
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.v, grads)  # second moment
        if self.bias_correction:
            # PyTorch's arrangement: step = eta / (1 - b1^t), denominator sqrt(v) / sqrt(1 - b2^t) + eps
            tf = t.astype(jnp.float32)
            step = eta / (1 - b1**tf)
            root_c2 = jnp.sqrt(1 - b2**tf)
        else:
            step, root_c2 = eta, 1.0

        def new_w(w, m, v):
            return w * (1 - eta * lam) - step * m / (jnp.sqrt(v) / root_c2 + eps)

        return jax.tree.map(new_w, params, m, v), AdamState(t, m, v)


# ---- factories: validate eagerly, store float32 ------------------------------------------------------


def sgd(lr) -> SGD:
    """Plain (stochastic) gradient descent; ``torch.optim.SGD(lr=lr)``."""
    return SGD(lr=_checks.positive("lr", lr))


def momentum(lr, beta=0.9) -> Momentum:
    """Heavy-ball momentum; ``torch.optim.SGD(lr=lr, momentum=beta)``."""
    return Momentum(lr=_checks.positive("lr", lr), beta=_checks.unit_interval("beta", beta))


def nesterov(lr, beta=0.9) -> Momentum:
    """Nesterov momentum; ``torch.optim.SGD(lr=lr, momentum=beta, nesterov=True)``."""
    return Momentum(lr=_checks.positive("lr", lr), beta=_checks.unit_interval("beta", beta), nesterov=True)


def adagrad(lr, eps=1e-10) -> Adagrad:
    """AdaGrad; ``torch.optim.Adagrad(lr=lr, eps=eps)``."""
    return Adagrad(lr=_checks.positive("lr", lr), eps=_checks.positive("eps", eps))


def rmsprop(lr, decay=0.99, eps=1e-8) -> RMSProp:
    """RMSProp; ``torch.optim.RMSprop(lr=lr, alpha=decay, eps=eps)``."""
    return RMSProp(
        lr=_checks.positive("lr", lr),
        decay=_checks.unit_interval("decay", decay),
        eps=_checks.positive("eps", eps),
    )


def adam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, *, bias_correction=True) -> Adam:
    """Adam; ``torch.optim.Adam(lr=lr, betas=(b1, b2), eps=eps)``."""
    return adamw(lr, b1, b2, eps, weight_decay=0.0, bias_correction=bias_correction)


def adamw(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01, *, bias_correction=True) -> Adam:
    """AdamW, Adam with decoupled weight decay; ``torch.optim.AdamW(...)``."""
    if not isinstance(bias_correction, bool):
        raise TypeError(f"bias_correction must be True or False, got bias_correction={bias_correction!r}")
    return Adam(
        lr=_checks.positive("lr", lr),
        b1=_checks.unit_interval("b1", b1),
        b2=_checks.unit_interval("b2", b2),
        eps=_checks.positive("eps", eps),
        weight_decay=_checks.nonnegative("weight_decay", weight_decay),
        bias_correction=bias_correction,
    )


# Second-order methods live in second_order.py, which imports Optimizer from here: re-export them last.
from lecture_lib.second_order import lbfgs, newton  # noqa: E402, F401

"""First-order optimizers against PyTorch, step by step, on pytrees with several leaves."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import lecture_lib as ll

O = ll.optimizers

# (name, our factory, torch factory): the contract table of DESIGN.md
CASES = [
    ("sgd", lambda: O.sgd(0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    ("momentum", lambda: O.momentum(0.05, beta=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    (
        "nesterov",
        lambda: O.nesterov(0.05, beta=0.8),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
    ),
    ("adagrad", lambda: O.adagrad(0.1, eps=1e-10), lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-10)),
    (
        "rmsprop",
        lambda: O.rmsprop(0.01, decay=0.95, eps=1e-8),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.95, eps=1e-8),
    ),
    (
        "adam",
        lambda: O.adam(0.01, b1=0.8, b2=0.99, eps=1e-8),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-8),
    ),
    (
        "adamw",
        lambda: O.adamw(0.01, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
    ),
]


def _params_and_grads(seed, steps):
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=(4,)).astype(np.float32)}
    grads = [
        {
            k: (rng.normal(size=v.shape) * rng.choice([1e-3, 1.0, 10.0])).astype(np.float32)
            for k, v in params.items()
        }
        for _ in range(steps)
    ]
    return params, grads


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_matches_pytorch_step_by_step(name, ours, theirs):
    steps = 100
    params, grads = _params_and_grads(seed=len(name), steps=steps)
    opt = ours()
    w = jax.tree.map(jnp.asarray, params)
    state = opt.init(w)
    update = jax.jit(opt.update)

    tw = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    topt = theirs(list(tw.values()))
    for t in range(steps):
        for k in tw:
            tw[k].grad = torch.tensor(grads[t][k])
        topt.step()
        w, state = update(jax.tree.map(jnp.asarray, grads[t]), state, w)
        for k in tw:
            expected = tw[k].detach().numpy()
            # float32 rounding differs by an ulp a step (fused multiply-adds) and walks like sqrt(t)
            atol = 2e-6 * max(1.0, np.abs(expected).max()) * np.sqrt(t + 1)
            np.testing.assert_allclose(
                np.asarray(w[k]), expected, rtol=2e-5, atol=atol, err_msg=f"{name} {k} step {t}"
            )


def test_bias_correction_switch_changes_first_step():
    # with bias correction the first Adam step moves every coordinate by ~lr; without, by lr*(1-b1)/sqrt(1-b2)
    g = jnp.array([1e-3, 1.0, 100.0])
    w0 = jnp.zeros(3)
    for bc, expected in [(True, 0.1), (False, 0.1 * 0.1 / np.sqrt(0.001))]:
        opt = O.adam(0.1, bias_correction=bc)
        w, _ = opt.update(g, opt.init(w0), w0)
        np.testing.assert_allclose(np.abs(np.asarray(w)), expected, rtol=1e-3)


def test_with_lr_replaces_only_the_learning_rate():
    opt = O.adam(0.1, b1=0.5)
    new = opt.with_lr(0.2)
    assert (
        float(new.lr) == pytest.approx(0.2) and float(new.b1) == 0.5 and float(opt.lr) == pytest.approx(0.1)
    )


def test_hyperparameters_are_float32_leaves():
    for _, ours, _ in CASES:
        leaves = jax.tree.leaves(ours())
        assert leaves and all(x.dtype == jnp.float32 and x.shape == () for x in leaves)
    # an int learning rate is stored as float32 too (same compiled version as a float one)
    assert jax.tree.structure(O.sgd(1)) == jax.tree.structure(O.sgd(0.5))
    assert O.sgd(1).lr.dtype == jnp.float32


def test_factories_work_under_vmap():
    lrs = jnp.array([0.1, 0.2, 0.4])
    g = jnp.ones(2)

    def one(lr):
        opt = O.momentum(lr, beta=0.5)
        w, _ = opt.update(g, opt.init(jnp.zeros(2)), jnp.zeros(2))
        return w

    np.testing.assert_allclose(np.asarray(jax.vmap(one)(lrs))[:, 0], -np.asarray(lrs), rtol=1e-6)


BAD = [
    (lambda: O.sgd(-0.1), ValueError, r"lr must be positive and finite, got lr=-0\.1"),
    (lambda: O.sgd(0), ValueError, r"lr must be positive and finite, got lr=0"),
    (lambda: O.sgd(float("nan")), ValueError, r"lr must be positive and finite, got lr=nan"),
    (lambda: O.sgd(float("inf")), ValueError, r"lr must be positive and finite, got lr=inf"),
    (lambda: O.sgd("0.1"), TypeError, r"lr must be a real number, got lr='0\.1'"),
    (lambda: O.sgd(True), TypeError, r"lr must be a real number, got lr=True"),
    (lambda: O.sgd(np.ones(2)), TypeError, r"lr must be a scalar"),
    (lambda: O.momentum(0.1, beta=1.0), ValueError, r"beta must be in \[0, 1\), got beta=1\.0"),
    (lambda: O.nesterov(0.1, beta=-0.1), ValueError, r"beta must be in \[0, 1\), got beta=-0\.1"),
    (lambda: O.adagrad(0.1, eps=0), ValueError, r"eps must be positive and finite, got eps=0"),
    (lambda: O.rmsprop(0.1, decay=1.5), ValueError, r"decay must be in \[0, 1\), got decay=1\.5"),
    (lambda: O.adam(0.1, b1=1), ValueError, r"b1 must be in \[0, 1\), got b1=1"),
    (lambda: O.adam(0.1, b2=-1e-3), ValueError, r"b2 must be in \[0, 1\), got b2=-0\.001"),
    (lambda: O.adam(0.1, eps=-1.0), ValueError, r"eps must be positive and finite, got eps=-1\.0"),
    (lambda: O.adamw(0.1, weight_decay=-0.1), ValueError, r"weight_decay must be non-negative"),
    (lambda: O.adam(0.1, bias_correction=1), TypeError, r"bias_correction must be True or False"),
]


@pytest.mark.parametrize("make,exc,match", BAD)
def test_bad_arguments_name_the_argument_and_value(make, exc, match):
    with pytest.raises(exc, match=match):
        make()

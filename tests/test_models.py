"""Models and losses against PyTorch (same weights, same numbers) and hand computation."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import lecture_lib.data as D
import lecture_lib.models as M

KEY = jax.random.key(0)
TORCH_ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}


@pytest.fixture(scope="module")
def digits():
    return D.digits(seed=0)


def _to_torch(model, params):
    layers = []
    for i, layer in enumerate(params):
        lin = torch.nn.Linear(*np.asarray(layer["W"]).shape)
        with torch.no_grad():  # torch stores W as (fan_out, fan_in)
            lin.weight.copy_(torch.from_numpy(np.asarray(layer["W"]).T.copy()))
            lin.bias.copy_(torch.from_numpy(np.array(layer["b"])))
        layers.append(lin)
        if i < len(params) - 1:
            layers.append(TORCH_ACTIVATIONS[model.activation]())
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("activation", list(M.ACTIVATIONS))
def test_mlp_matches_torch_logits_loss_and_gradients(activation, digits):
    model = M.mlp([64, 32, 16, 10], activation=activation)
    params = model.init(KEY)
    x, y = digits.x_train[:100], digits.y_train[:100]

    def loss(params):
        return jnp.mean(M.softmax_cross_entropy(model.apply(params, x), y))

    with jax.default_matmul_precision("float32"):  # no TF32 on a GPU: compare true float32 numbers
        value, grads = jax.value_and_grad(loss)(params)
        logits = model.apply(params, x)
    net = _to_torch(model, params)
    logits_t = net(torch.tensor(np.asarray(x)))
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.tensor(np.asarray(y)).long())
    loss_t.backward()
    np.testing.assert_allclose(np.asarray(logits), logits_t.detach().numpy(), rtol=1e-5, atol=1e-5)
    assert float(value) == pytest.approx(loss_t.item(), rel=1e-5)
    torch_layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    for g, lin in zip(grads, torch_layers):
        np.testing.assert_allclose(np.asarray(g["W"]), lin.weight.grad.numpy().T, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(np.asarray(g["b"]), lin.bias.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_pytorch_style_initialisation_bounds_and_spread():
    model = M.mlp([400, 300, 10])
    params = model.init(KEY)
    torch.manual_seed(0)
    reference = torch.nn.Linear(400, 300).weight.detach().numpy()
    for layer, fan_in in zip(params, model.sizes[:-1]):
        bound = 1 / math.sqrt(fan_in)
        for name in ("W", "b"):
            a = np.asarray(layer[name])
            assert a.dtype == np.float32 and np.abs(a).max() <= bound
        W = np.asarray(layer["W"])
        assert np.abs(W).max() > 0.99 * bound and abs(W.mean()) < 0.02 * bound
        assert W.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)  # uniform(-a, a) has sd a/sqrt(3)
    assert layer["W"].shape == (300, 10) and layer["b"].shape == (10,)
    W1 = np.asarray(params[0]["W"])
    assert np.abs(reference).max() <= 1 / 20 and W1.std() == pytest.approx(reference.std(), rel=0.02)


def test_first_cost_on_digits_is_about_ln10(digits):
    """cs231n: a softmax classifier with small weights starts at -ln(0.1) = 2.302."""
    for seed in range(3):
        model = M.mlp([64, 50, 10])
        logits = model.apply(model.init(jax.random.key(seed)), digits.x_train)
        assert float(jnp.mean(M.softmax_cross_entropy(logits, digits.y_train))) == pytest.approx(
            math.log(10), abs=0.1
        )
    small = M.mlp([64, 50, 10], init_scale=1e-4)
    params = small.init(KEY)
    assert all(not np.asarray(layer["b"]).any() for layer in params)
    assert np.asarray(params[0]["W"]).std() == pytest.approx(1e-4, rel=0.05)
    logits = small.apply(params, digits.x_train)
    assert abs(float(jnp.mean(M.softmax_cross_entropy(logits, digits.y_train))) - math.log(10)) < 1e-3


def test_apply_works_on_one_example_and_on_stacked_batches():
    model = M.mlp([3, 4, 2], activation="tanh")
    params = model.init(KEY)
    x = jax.random.normal(KEY, (5, 6, 3))
    out = model.apply(params, x)
    assert out.shape == (5, 6, 2)
    np.testing.assert_allclose(np.asarray(model.apply(params, x[2, 3])), np.asarray(out[2, 3]), rtol=1e-6)
    lin = M.linear(3, 2)
    p = lin.init(KEY)
    np.testing.assert_allclose(
        np.asarray(lin.apply(p, x[0])), np.asarray(x[0] @ p[0]["W"] + p[0]["b"][None, :]), rtol=1e-6
    )
    assert (lin.sizes, lin.d_in, lin.d_out) == ((3, 2), 3, 2)


def test_model_is_a_static_argument_and_new_params_do_not_recompile(count_compiles):
    model = M.mlp([8, 5, 3])
    forward = jax.jit(lambda model, params, x: model.apply(params, x), static_argnums=0)
    x = jnp.ones((4, 8))
    forward(model, model.init(KEY), x)
    with count_compiles() as c:
        forward(M.mlp([8, 5, 3]), model.init(jax.random.key(1)), x)  # an equal model hashes equal
    assert c.count == 0


def test_softmax_cross_entropy_against_torch_and_stable_for_huge_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 5)).astype(np.float32) * 3
    y = rng.integers(0, 5, size=7)
    ours = M.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(y, jnp.int32))
    ref = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y), reduction="none")
    assert ours.shape == (7,)
    np.testing.assert_allclose(np.asarray(ours), ref.numpy(), rtol=1e-5, atol=1e-6)
    huge = jnp.asarray([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 0.0]])
    np.testing.assert_allclose(
        np.asarray(M.softmax_cross_entropy(huge, jnp.asarray([2, 0]))), [2000.0, math.log(2)], rtol=1e-6
    )


def test_squared_error_is_half_the_summed_square_per_sample():
    pred = jnp.asarray([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    y = jnp.asarray([[0.0, 0.0], [1.0, 1.0], [3.0, 2.0]])
    np.testing.assert_allclose(np.asarray(M.squared_error(pred, y)), [2.5, 2.5, 0.5])
    # a (batch,) target for a (batch, 1) prediction: the regression datasets' shape
    np.testing.assert_allclose(np.asarray(M.squared_error(pred[:, :1], y[:, 0])), [0.5, 0.5, 0.0])
    ref = 0.5 * torch.nn.functional.mse_loss(
        torch.tensor(np.asarray(pred)), torch.tensor(np.asarray(y)), reduction="none"
    )
    np.testing.assert_allclose(np.asarray(M.squared_error(pred, y)), ref.sum(1).numpy())
    with pytest.raises(ValueError, match=r"same number of values, got shapes \(3, 2\) and \(3,\)"):
        M.squared_error(pred, y[:, 0])


def test_losses_registry_names_the_per_sample_losses():
    assert M.LOSSES == {"cross_entropy": M.softmax_cross_entropy, "squared_error": M.squared_error}


def test_accuracy_counts_argmax_hits():
    logits = jnp.asarray([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert float(M.accuracy(logits, jnp.asarray([1, 0, 0, 0]))) == pytest.approx(0.75)


def test_l2_penalises_weight_matrices_only():
    model = M.mlp([4, 3, 2])
    params = model.init(KEY)
    expected = 0.5 * sum(float(jnp.sum(layer["W"] ** 2)) for layer in params)
    assert float(M.l2(params)) == pytest.approx(expected, rel=1e-6)
    shifted = [{"W": layer["W"], "b": layer["b"] + 10.0} for layer in params]
    assert float(M.l2(shifted)) == pytest.approx(expected, rel=1e-6)
    grads = jax.grad(M.l2)(params)
    for g, layer in zip(grads, params):
        np.testing.assert_array_equal(np.asarray(g["W"]), np.asarray(layer["W"]))
        assert not np.asarray(g["b"]).any()
    w = jnp.asarray([3.0, 4.0])
    assert float(M.l2(w)) == pytest.approx(12.5)


BAD = [
    (
        lambda: M.mlp([64]),
        TypeError,
        r"sizes must be a sequence of at least two layer widths, got sizes=\[64\]",
    ),
    (lambda: M.mlp("64-10"), TypeError, "sizes must be a sequence"),
    (lambda: M.mlp([64, 0, 10]), ValueError, r"sizes must be positive integers, got sizes=\[64, 0, 10\]"),
    (lambda: M.mlp([64, 2.5]), ValueError, "sizes must be positive integers"),
    (lambda: M.mlp([4, 2], activation="elu"), ValueError, "activation must be one of relu, tanh, sigmoid"),
    (lambda: M.mlp([4, 2], init_scale=-1e-4), ValueError, "init_scale must be positive and finite"),
    (lambda: M.linear(0, 2), ValueError, "sizes must be positive integers"),
]


@pytest.mark.parametrize("call,error,message", BAD)
def test_bad_arguments_are_rejected_with_a_message(call, error, message):
    with pytest.raises(error, match=message):
        call()


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init_2d(sizes, uniform, key, scale):
    """``Model.init`` as first written: every weight matrix drawn in its (fan_in, fan_out) shape."""
    params = []
    for k, fi, fo in zip(jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:]):
        kW, kb = jax.random.split(k)
        if uniform:
            bound = 1 / math.sqrt(fi)
            W = jax.random.uniform(kW, (fi, fo), minval=-bound, maxval=bound)
            b = jax.random.uniform(kb, (fo,), minval=-bound, maxval=bound)
        else:
            W, b = scale * jax.random.normal(kW, (fi, fo)), jnp.zeros((fo,))
        params.append({"W": W, "b": b})
    return params


@pytest.mark.parametrize("init_scale", [None, 0.01, 1e-4])
@pytest.mark.parametrize("sizes", [(64, 50, 10), (3, 1), (7, 5, 5, 2), (64, 256, 256, 10)])
def test_init_draws_flat_the_same_numbers_as_drawing_each_matrix_2d(sizes, init_scale):
    """init draws each W flat and reshapes it (it compiles faster): bit for bit the 2-D draw."""
    model = M.mlp(list(sizes), init_scale=init_scale)
    for seed in (0, 5):
        key = jax.random.key(seed)
        ref = _init_2d(sizes, init_scale is None, key, init_scale or 1.0)
        got = model.init(key)
        for layer, want in zip(got, ref):
            for name in ("W", "b"):
                assert layer[name].shape == want[name].shape and layer[name].dtype == jnp.float32
                np.testing.assert_array_equal(np.asarray(layer[name]), np.asarray(want[name]))


def test_init_scale_is_data_models_differing_only_in_it_share_one_compiled_init(count_compiles):
    key = jax.random.key(3)
    M.mlp([9, 4, 2], init_scale=0.01).init(key)
    M.mlp([9, 4, 2]).init(key)
    with count_compiles() as c:
        big = M.mlp([9, 4, 2], init_scale=0.5, activation="tanh").init(key)
        small = M.mlp([9, 4, 2], init_scale=1e-4).init(key)
        M.mlp([9, 4, 2], activation="sigmoid").init(key)
    assert c.count == 0
    for a, b in zip(big, small):  # the same draw, scaled
        np.testing.assert_allclose(np.asarray(a["W"]) * 2e-4, np.asarray(b["W"]), rtol=1e-6)
        assert not np.any(np.asarray(b["b"]))

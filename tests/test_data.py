"""Datasets against closed forms, Monte Carlo and the files' own format."""

from __future__ import annotations

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.datasets import load_digits

import lecture_lib.data as D

KEY = jax.random.key(0)

# ---- digits --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits0():
    return D.digits(seed=0)


def test_digits_shapes_dtypes_and_metadata(digits0):
    d = digits0
    assert d.x_train.shape == (1437, 64) and d.x_val.shape == (360, 64)
    assert d.y_train.shape == (1437,) and d.y_val.shape == (360,)
    assert d.x_train.dtype == jnp.float32 and d.y_train.dtype == jnp.int32
    assert d.n == 1437 and d.n_classes == 10 and d.name == "digits"


def test_digits_split_is_stratified_and_uses_every_image_once(digits0):
    full = np.bincount(load_digits().target, minlength=10)
    train = np.bincount(np.asarray(digits0.y_train), minlength=10)
    val = np.bincount(np.asarray(digits0.y_val), minlength=10)
    np.testing.assert_array_equal(train + val, full)
    assert np.all(np.abs(val - full * 360 / 1797) <= 1)
    assert np.all(np.abs(train - full * 1437 / 1797) <= 1)


def test_digits_standardised_with_training_statistics(digits0):
    raw = load_digits().data
    constant = raw.std(0) == 0  # constant in the whole set, hence in training
    x = np.asarray(digits0.x_train, np.float64)
    varying = x.std(0) > 0
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x[:, varying].std(0), 1.0, rtol=1e-4)
    assert constant.sum() > 0 and not np.any(varying & constant)
    # pixels constant in training are 0 in both splits, whatever their value in validation
    assert np.all(x[:, ~varying] == 0) and np.all(np.asarray(digits0.x_val)[:, ~varying] == 0)
    # validation uses the same affine map as training: its mean is small but not exactly 0
    assert 0 < np.abs(np.asarray(digits0.x_val).mean(0)).max() < 1.0


def test_digits_is_deterministic_per_seed_and_differs_between_seeds(digits0):
    again, other = D.digits(seed=0), D.digits(seed=1)
    np.testing.assert_array_equal(np.asarray(again.x_train), np.asarray(digits0.x_train))
    np.testing.assert_array_equal(np.asarray(again.y_val), np.asarray(digits0.y_val))
    assert not np.array_equal(np.asarray(other.y_train), np.asarray(digits0.y_train))


# ---- CIFAR-10 --------------------------------------------------------------------------------------------

PER_BATCH = 20


def _write_fake_cifar(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    raw = {}
    for name in D.CIFAR10_FILES:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=PER_BATCH)]
        with open(
            folder / name, "wb"
        ) as fh:  # the python version's layout: bytes keys, uint8 rows, list labels
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, fh)
        raw[name] = (data, np.asarray(labels))
    return raw


def test_cifar10_reads_the_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    raw = _write_fake_cifar(folder)
    train_x = np.concatenate([raw[f][0] for f in D.CIFAR10_FILES[:5]]).astype(np.float32)
    train_y = np.concatenate([raw[f][1] for f in D.CIFAR10_FILES[:5]])

    d = D.cifar10(folder, subtract_mean=False)
    assert d.x_train.shape == (5 * PER_BATCH, 3072) and d.x_val.shape == (PER_BATCH, 3072)
    assert d.x_train.dtype == jnp.float32 and d.y_train.dtype == jnp.int32 and d.n_classes == 10
    np.testing.assert_array_equal(np.asarray(d.x_train), train_x)
    np.testing.assert_array_equal(np.asarray(d.y_train), train_y)
    np.testing.assert_array_equal(np.asarray(d.y_val), raw["test_batch"][1])

    small = D.cifar10(str(folder), n_train=30, n_val=5)  # spans two batches; mean image of those 30
    mean = train_x[:30].mean(0)
    np.testing.assert_allclose(np.asarray(small.x_train), train_x[:30] - mean, atol=1e-4)
    np.testing.assert_allclose(np.asarray(small.x_val), raw["test_batch"][0][:5] - mean, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(small.y_train), train_y[:30])

    with pytest.raises(ValueError, match="asked for 101 examples"):
        D.cifar10(folder, n_train=101)
    with pytest.raises(ValueError, match="n_val must be a positive integer, got n_val=0"):
        D.cifar10(folder, n_val=0)


def test_cifar10_missing_folder_or_file_names_the_path_and_the_files(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"nowhere.*data_batch_1, data_batch_2.*test_batch"):
        D.cifar10(missing)
    folder = tmp_path / "cifar-10-batches-py"
    _write_fake_cifar(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="missing data_batch_3. Expected"):
        D.cifar10(folder)


# ---- Wilson et al. (2017) ------------------------------------------------------------------------------


def _wilson_with_more_positives(n, n_test):
    for seed in range(20):  # the lemma's premise n+ > n-; papers.md: "otherwise reseed"
        d = D.wilson2017(n, 0.6, jax.random.key(seed), n_test=n_test)
        if (np.asarray(d.y_train) > 0).sum() > n / 2:
            return d
    raise AssertionError("no seed with n+ > n-")


def test_wilson2017_structure():
    n, n_test = 12, 7
    d = _wilson_with_more_positives(n, n_test)
    x, y = np.asarray(d.x_train), np.asarray(d.y_train)
    xt, yt = np.asarray(d.x_val), np.asarray(d.y_val)
    width = 3 + 5 * (n + n_test)
    assert x.shape == (n, width) and xt.shape == (n_test, width) and d.y_train.dtype == jnp.float32
    assert set(np.unique(y)) <= {-1.0, 1.0} and set(np.unique(yt)) <= {-1.0, 1.0}
    for xs, ys, start in ((x, y, 3), (xt, yt, 3 + 5 * n)):
        np.testing.assert_array_equal(xs[:, 0], ys)
        np.testing.assert_array_equal(xs[:, 1:3], 1.0)
        for i, yi in enumerate(ys):
            block = xs[i, start + 5 * i : start + 5 * i + 5]
            np.testing.assert_array_equal(block, [1, 1, 1, 1, 1] if yi < 0 else [1, 0, 0, 0, 0])
        assert xs[:, 3:].sum() == np.where(ys > 0, 1, 5).sum()  # nothing outside the own blocks
    assert not x[:, 3 + 5 * n :].any() and not xt[:, 3 : 3 + 5 * n].any()  # test features unseen in training
    np.testing.assert_array_equal(x.sum(0)[:3], [y.sum(), n, n])
    # the lemma's premise: X sign(X^T y) = 4 y
    np.testing.assert_array_equal(x @ np.sign(x.T @ y), 4 * y)


def test_wilson2017_min_norm_solution_matches_the_closed_form():
    d = _wilson_with_more_positives(40, 400)
    x, y = np.asarray(d.x_train, np.float64), np.asarray(d.y_train, np.float64)
    xt, yt = np.asarray(d.x_val, np.float64), np.asarray(d.y_val, np.float64)
    n_pos, n_neg = int((y > 0).sum()), int((y < 0).sum())
    dual = D.wilson2017_dual(n_pos, n_neg)
    alpha = np.linalg.solve(x @ x.T, y)
    np.testing.assert_allclose(alpha, np.where(y > 0, dual["a"], -dual["c_prime"]), atol=1e-10)
    w = D.wilson2017_min_norm(x, y)
    assert w.dtype == np.float64
    np.testing.assert_allclose(x @ w, y, atol=1e-10)  # interpolates
    np.testing.assert_allclose(xt @ w, np.where(yt > 0, dual["margin_pos"], dual["margin_neg"]), atol=1e-6)
    assert dual["margin_pos"] > 0 > dual["margin_neg"] and np.all(np.sign(xt @ w) == yt)
    # the adaptive methods' limit sign(X^T y) calls every test point positive: error = share of negatives
    assert np.all(xt @ np.sign(x.T @ y) > 0)


def test_wilson2017_label_frequency_under_vmap():
    p = 0.7
    ys = jax.vmap(lambda k: D.wilson2017(50, p, k, n_test=1).y_train)(jax.random.split(KEY, 40))
    share = float(jnp.mean(ys > 0))
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / ys.size)


# ---- linear and logistic regression --------------------------------------------------------------------


# one shape for every regression test: the factory compiles once
N, DIM, N_VAL = 200, 8, 20_000


@pytest.mark.parametrize("condition", [1.0, 10.0, 1000.0])
def test_linear_regression_hessian_has_the_requested_condition_number(condition):
    d = D.linear_regression(N, DIM, KEY, condition=condition, noise=0.1, n_val=N_VAL)
    x, y = np.asarray(d.x_train, np.float64), np.asarray(d.y_train, np.float64)
    H = x.T @ x / len(x)
    np.testing.assert_allclose(np.asarray(d.H), H, rtol=1e-5, atol=1e-5 * condition)
    eig = np.linalg.eigvalsh(H)
    assert eig[-1] / eig[0] == pytest.approx(condition, rel=1e-3)
    np.testing.assert_allclose(np.asarray(d.eigenvalues), eig, rtol=1e-4)
    assert float(d.L) == pytest.approx(condition, rel=1e-6) and float(d.mu) == pytest.approx(1.0)
    # w_opt solves the normal equations X^T X w = X^T y
    w = np.asarray(d.w_opt, np.float64)
    assert np.linalg.norm(x.T @ (x @ w - y)) < 1e-4 * np.linalg.norm(x.T @ y)
    np.testing.assert_allclose(w, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-3, atol=1e-4)
    assert d.x_val.shape == (N_VAL, DIM) and d.y_val.shape == (N_VAL,) and d.n_classes is None
    # validation inputs are Gaussian with covariance H: the population version of the training design
    xv = np.asarray(d.x_val, np.float64)
    assert np.linalg.norm(xv.T @ xv / N_VAL - H, 2) < 0.1 * condition


def test_linear_regression_loss_gradient_hessian_and_noise_free_optimum(count_compiles):
    d = D.linear_regression(N, DIM, KEY, condition=30.0, noise=0.0, n_val=N_VAL)
    np.testing.assert_allclose(np.asarray(d.w_opt), np.asarray(d.w_true), atol=1e-4)
    assert float(d.loss(d.w_opt)) < 1e-9
    hessian = np.asarray(jax.hessian(d.loss)(d.w_true))
    np.testing.assert_allclose(hessian, np.asarray(d.H), rtol=1e-4, atol=1e-4)
    with count_compiles() as c:  # condition, noise and key are data: no new compilation
        noisy = D.linear_regression(N, DIM, jax.random.key(7), condition=300.0, noise=0.5, n_val=N_VAL)
    assert c.count == 0
    g = jax.grad(noisy.loss)(noisy.w_opt)
    assert float(jnp.linalg.norm(g)) < 1e-3 * float(jnp.linalg.norm(jax.grad(noisy.loss)(noisy.w_true)))


def test_regression_factory_runs_under_jit_with_traced_hyperparameters(count_compiles):
    make = jax.jit(lambda key, c, s: D.linear_regression(30, 4, key, condition=c, noise=s).w_opt)
    make(KEY, 10.0, 0.1)
    with count_compiles() as c:
        make(jax.random.key(1), 100.0, 0.5)
    assert c.count == 0


def test_logistic_regression_labels_follow_the_logistic_model():
    d = D.logistic_regression(4000, 4, KEY, condition=5.0, w_norm=2.0)
    y = np.asarray(d.y_train)
    assert d.y_train.dtype == jnp.int32 and set(np.unique(y)) == {0, 1} and d.n_classes == 2
    assert float(jnp.linalg.norm(d.w_true)) == pytest.approx(2.0, rel=1e-5)
    prob = np.asarray(jax.nn.sigmoid(d.x_train @ d.w_true), np.float64)
    assert abs(y.mean() - prob.mean()) < 4 * math.sqrt(np.sum(prob * (1 - prob))) / len(y)
    # P(y=1|x) is increasing in x^T w*: compare the label rate in the two halves
    order = np.argsort(prob)
    assert y[order[2000:]].mean() > y[order[:2000]].mean() + 0.2
    assert float(d.L) == pytest.approx(5.0 / 4, rel=1e-6)


# ---- function fitting ----------------------------------------------------------------------------------


def _line(x):
    return 0.3 + 0.5 * x  # a fixed model f with x of shape (m, 1)


@jax.jit
def _mc_losses(problem, key):
    x, y = problem.sample(key, 1_000_000)
    err_y = _line(x)[:, 0] - y
    err_g = _line(x)[:, 0] - problem.g(x[:, 0])
    return err_y * err_y, err_g * err_g, x


CASES = [(t, dens) for dens in D.DENSITIES for t in ("sin", "wave", "bump")]


def test_expected_loss_agrees_with_a_million_samples(count_compiles):
    warm = D.function_fit_problem()
    _mc_losses(warm, KEY)  # one compiled sampler for every target, density and noise
    warm.expected_loss(_line), warm.expected_loss(_line, noisy=False)
    with count_compiles() as c:
        for i, (target, density) in enumerate(CASES):
            problem = D.function_fit_problem(target, density=density, noise=0.2, x_range=(-1.0, 2.0))
            loss_y, loss_g, x = (np.asarray(a, np.float64) for a in _mc_losses(problem, jax.random.key(i)))
            assert -1.0 <= x.min() and x.max() <= 2.0
            for losses, noisy in ((loss_y, True), (loss_g, False)):
                exact = float(problem.expected_loss(_line, noisy=noisy))
                se = losses.std() / math.sqrt(losses.size)
                assert abs(losses.mean() - exact) < 3 * se + 1e-6, (target, density, noisy)
            assert float(problem.expected_loss(_line)) == pytest.approx(
                float(problem.expected_loss(_line, noisy=False)) + 0.04, rel=1e-6
            )
    assert c.count == 0


@pytest.mark.parametrize("density", D.DENSITIES)
def test_pdf_is_a_normalised_density_matching_scipy(density):
    problem = D.function_fit_problem("sin", density=density, x_range=(-1.0, 3.0))
    # expected squared error of g + 1 without noise = integral of the pdf
    assert float(problem.expected_loss(lambda x: problem.g(x) + 1, noisy=False)) == pytest.approx(
        1.0, abs=1e-5
    )
    x = np.linspace(-2.0, 4.0, 601)
    u = scipy.stats.uniform(-1, 4)
    reference = {
        "uniform": u.pdf(x),
        "normal": scipy.stats.truncnorm(-2, 2, loc=1.0, scale=1.0).pdf(x),
        "beta": scipy.stats.beta(2, 5, loc=-1.0, scale=4.0).pdf(x),
    }[density]
    inside = (x > -1) & (x < 3)  # the ends are a matter of convention
    np.testing.assert_allclose(
        np.asarray(problem.pdf(jnp.asarray(x, jnp.float32)))[inside], reference[inside], atol=1e-5
    )
    assert not np.asarray(problem.pdf(jnp.asarray([-1.5, 3.5]))).any()


def test_empirical_risk_is_unbiased_over_vmapped_samples():
    problem = D.function_fit_problem("wave", density="normal", noise=0.3)
    draw = jax.jit(jax.vmap(lambda k: problem.empirical_loss(_line, *problem.sample(k, 10))))
    risks = np.asarray(draw(jax.random.split(KEY, 10_000)), np.float64)
    se = risks.std() / math.sqrt(risks.size)
    assert abs(risks.mean() - float(problem.expected_loss(_line))) < 3 * se


def test_function_fit_dataset():
    d = D.function_fit(25, KEY, target="step", density="beta", noise=0.0, n_val=40)
    assert d.x_train.shape == (25, 1) and d.y_train.shape == (25,) and d.x_val.shape == (40, 1)
    assert d.x_train.dtype == jnp.float32 and d.n == 25 and d.n_classes is None
    np.testing.assert_allclose(np.asarray(d.y_train), np.tanh(5 * np.asarray(d.x_train[:, 0])), atol=1e-6)
    p = d.problem
    assert (p.target_name, p.density_name, p.formula_text) == ("step", "beta", "tanh(5x)")
    assert float(p.expected_loss(p.g)) == pytest.approx(0.0, abs=1e-10)
    # same key, same numbers; the sample's error matches empirical_loss
    again = D.function_fit(25, KEY, target="step", density="beta", noise=0.0, n_val=40)
    np.testing.assert_array_equal(np.asarray(again.x_train), np.asarray(d.x_train))
    mse = np.mean((np.asarray(_line(d.x_train))[:, 0] - np.asarray(d.y_train)) ** 2)
    assert float(p.empirical_loss(_line, d.x_train, d.y_train)) == pytest.approx(mse, rel=1e-5)


# ---- argument validation -------------------------------------------------------------------------------

BAD = [
    (
        lambda: D.function_fit_problem("cosh"),
        ValueError,
        "target must be one of sin, wave, bump, step, cubic",
    ),
    (lambda: D.function_fit_problem(density="cauchy"), ValueError, "density must be one of uniform, normal"),
    (
        lambda: D.function_fit_problem(noise=-0.1),
        ValueError,
        r"noise must be non-negative and finite, got noise=-0.1",
    ),
    (lambda: D.function_fit_problem(x_range=(1.0, -1.0)), ValueError, r"lo < hi, got x_range=\(1.0, -1.0\)"),
    (lambda: D.function_fit_problem(x_range=1.0), TypeError, "x_range must be a pair"),
    (lambda: D.function_fit_problem(x_range=(0, math.inf)), ValueError, r"x_range\[1\] must be finite"),
    (lambda: D.function_fit(0, KEY), ValueError, "n must be a positive integer, got n=0"),
    (lambda: D.function_fit(2.5, KEY), TypeError, "n must be a positive integer, got n=2.5"),
    (
        lambda: D.function_fit(5, 0),
        TypeError,
        r"key must be a JAX PRNG key such as jax.random.key\(0\), got key=0",
    ),
    (lambda: D.function_fit(5, KEY, n_val=-1), ValueError, "n_val must be a positive integer, got n_val=-1"),
    (lambda: D.function_fit_problem().sample(KEY, 0), ValueError, "n must be a positive integer, got n=0"),
    (
        lambda: D.linear_regression(10, 3, KEY, condition=0.5),
        ValueError,
        "condition must be finite and at least 1",
    ),
    (lambda: D.linear_regression(10, 3, KEY, noise=-1.0), ValueError, "noise must be non-negative"),
    (
        lambda: D.linear_regression(3, 10, KEY),
        ValueError,
        r"n must be at least d \(XᵀX invertible\), got n=3, d=10",
    ),
    (lambda: D.linear_regression(10, 1, KEY, condition=5.0), ValueError, "condition must be 1 when d=1"),
    (lambda: D.linear_regression(10, 0, KEY), ValueError, "d must be a positive integer, got d=0"),
    (lambda: D.logistic_regression(10, 3, KEY, w_norm=-1.0), ValueError, "w_norm must be non-negative"),
    (lambda: D.logistic_regression(10, 3, KEY, condition=math.nan), ValueError, "condition must be finite"),
    (lambda: D.wilson2017(10, 0.5, KEY), ValueError, r"p must be in \(0.5, 1\), got p=0.5"),
    (lambda: D.wilson2017(10, 1.0, KEY), ValueError, r"p must be in \(0.5, 1\), got p=1.0"),
    (lambda: D.wilson2017(10, 0.3, KEY), ValueError, r"p must be in \(0.5, 1\), got p=0.3"),
    (lambda: D.wilson2017(-2, 0.6, KEY), ValueError, "n must be a positive integer, got n=-2"),
    (
        lambda: D.wilson2017(5, 0.6, KEY, n_test=0),
        ValueError,
        "n_test must be a positive integer, got n_test=0",
    ),
    (lambda: D.wilson2017(5, 0.6, 3), TypeError, "key must be a JAX PRNG key"),
    (lambda: D.wilson2017_dual(0, 3), ValueError, "n_pos must be a positive integer, got n_pos=0"),
    (lambda: D.digits(seed=-1), ValueError, "seed must be a non-negative integer, got seed=-1"),
    (lambda: D.digits(seed=0.5), TypeError, "seed must be a non-negative integer, got seed=0.5"),
    (lambda: D.cifar10("x", n_train=0), ValueError, "n_train must be a positive integer, got n_train=0"),
]


@pytest.mark.parametrize("call,error,message", BAD)
def test_bad_arguments_are_rejected_with_a_message(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_eager_samples_are_prefixes_of_one_compiled_draw(count_compiles):
    """Eager samples of up to 1,024 pairs share one compiled sampler: the random bits of a draw do not depend
    on its length, so each is the prefix of the 1,024-pair draw, and equal to a sample drawn at its own length
    up to float32 rounding of the transforms (a different compiled program)."""
    for density in D.DENSITIES:
        problem = D.function_fit_problem("wave", density=density, noise=0.3)
        full = [np.asarray(a) for a in problem.sample(KEY, 1024)]
        with count_compiles() as c:
            parts = {n: [np.asarray(a) for a in problem.sample(KEY, n)] for n in (1, 8, 16, 20, 50, 1000)}
        assert c.count == 0, density
        for n, (x, y) in parts.items():
            assert x.shape == (n, 1) and y.shape == (n,)
            np.testing.assert_array_equal(x, full[0][:n])
            np.testing.assert_array_equal(y, full[1][:n])
            own = jax.jit(lambda k, p=problem, n=n: p.sample(k, n))(KEY)  # traced key: drawn at length n
            np.testing.assert_allclose(x, np.asarray(own[0]), rtol=0, atol=1e-6)
            np.testing.assert_allclose(y, np.asarray(own[1]), rtol=0, atol=1e-6)

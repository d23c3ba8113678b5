r"""Datasets: 1-D function fitting, linear/logistic regression, digits, CIFAR-10, Wilson et al. (2017).

Every factory returns a :class:`Dataset` pytree: ``x_train``, ``y_train``, ``x_val``, ``y_val`` as JAX arrays,
with ``name`` and ``n_classes`` as static metadata. Inputs are float32 (n, d); targets are (n,): float32 for
regression (``n_classes is None``), int32 class indices for classification. Synthetic factories take an
explicit ``key`` (``jax.random.key(0)``); shapes (``n``, ``d``) are Python ints and every other number may be
traced, so a slider moving the noise or the condition number never recompiles, and keys can be vmapped.

>>> import jax, lecture_lib as ll
>>> data = ll.data.function_fit(20, jax.random.key(0), target="sin", noise=0.1)
>>> data.x_train.shape, data.y_train.shape, round(float(data.problem.expected_loss(data.problem.g)), 4)
((20, 1), (20,), 0.01)
"""

from __future__ import annotations

import functools
import math
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks
from lecture_lib._pytree import pytree_dataclass, static_field

_HI = jax.lax.Precision.HIGHEST  # float32 matmuls even where the backend would use TF32


@pytree_dataclass
class Dataset:
    """Training and validation arrays; ``name`` and ``n_classes`` (None for regression) are static."""

    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    name: str = static_field(default="data")
    n_classes: int | None = static_field(default=None)

    @property
    def n(self) -> int:
        return self.x_train.shape[0]


def _key(key):
    typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    raw = isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,)  # jax.random.PRNGKey
    if typed or raw or _checks.is_traced(key):
        return key
    raise TypeError(f"key must be a JAX PRNG key such as jax.random.key(0), got key={key!r}")


def _n_val(n_val, n):
    return n if n_val is None else _checks.positive_int("n_val", n_val, array=False)


@pytree_dataclass
class LinearRegressionData(Dataset):
    r"""Least squares :math:`L(w) = \frac{1}{2n}\lVert Xw - y\rVert^2` with Hessian :math:`H = X^\top X/n`.

    ``w_opt`` is the exact minimiser, ``eigenvalues`` the spectrum of H (ascending): ``mu`` = 1,
    ``L`` = ``condition``, so gradient descent converges for η < 2/L.
    """

    w_true: jax.Array = None
    w_opt: jax.Array = None
    H: jax.Array = None
    eigenvalues: jax.Array = None

    @property
    def L(self):
        return self.eigenvalues[-1]

    @property
    def mu(self):
        return self.eigenvalues[0]

    def loss(self, w):
        r = jnp.matmul(self.x_train, w, precision=_HI) - self.y_train
        return 0.5 * jnp.mean(r * r)


@pytree_dataclass
class LogisticRegressionData(Dataset):
    r"""Labels in {0, 1} with :math:`P(y=1\mid x) = \sigma(x^\top w^\star)`; ``eigenvalues`` of XᵀX/n.

    The mean logistic loss has Hessian :math:`\preceq X^\top X/(4n)`: it is L-smooth with ``L`` = λ_max/4.
    """

    w_true: jax.Array = None
    eigenvalues: jax.Array = None

    @property
    def L(self):
        return self.eigenvalues[-1] / 4


@functools.partial(jax.jit, static_argnames=("n", "d", "n_val", "logistic"))
def _regression(key, condition, scale, *, n, d, n_val, logistic):
    kq, kv, kz, kw, ky, kyv = jax.random.split(key, 6)
    lam = condition ** jnp.linspace(0.0, 1.0, d)  # eigenvalues of XᵀX/n, log-spaced from 1 to κ
    V = jnp.linalg.qr(jax.random.normal(kv, (d, d)))[0]
    Q = jnp.linalg.qr(jax.random.normal(kq, (n, d)))[0]  # orthonormal columns
    root = jnp.sqrt(lam)[None, :]
    # X = √n Q diag(√λ) Vᵀ gives XᵀX/n = V diag(λ) Vᵀ; validation inputs are Gaussian with that covariance
    x = jnp.matmul(math.sqrt(n) * Q * root, V.T, precision=_HI)
    x_val = jnp.matmul(jax.random.normal(kz, (n_val, d)) * root, V.T, precision=_HI)
    w = jax.random.normal(kw, (d,))
    if logistic:
        w_true = scale * w / jnp.linalg.norm(w)
        y, y_val = (
            jax.random.bernoulli(k, jax.nn.sigmoid(jnp.matmul(a, w_true, precision=_HI))).astype(jnp.int32)
            for k, a in ((ky, x), (kyv, x_val))
        )
        return LogisticRegressionData(x, y, x_val, y_val, "logistic_regression", 2, w_true, lam)
    y = jnp.matmul(x, w, precision=_HI) + scale * jax.random.normal(ky, (n,))
    y_val = jnp.matmul(x_val, w, precision=_HI) + scale * jax.random.normal(kyv, (n_val,))
    # X⁺y = V diag(1/√λ) Qᵀy/√n: better conditioned than solving the normal equations
    w_opt = jnp.matmul(V, jnp.matmul(Q.T, y, precision=_HI) / jnp.sqrt(n * lam), precision=_HI)
    H = jnp.matmul(x.T, x, precision=_HI) / n
    return LinearRegressionData(x, y, x_val, y_val, "linear_regression", None, w, w_opt, H, lam)


def _regression_args(n, d, key, condition, n_val):
    n, d = _checks.positive_int("n", n, array=False), _checks.positive_int("d", d, array=False)
    if n < d:
        raise ValueError(f"n must be at least d (XᵀX invertible), got n={n}, d={d}")
    condition = _checks.real("condition", condition, lo=1.0, rule="be finite and at least 1")
    if d == 1 and not _checks.is_traced(condition) and float(condition) != 1.0:
        raise ValueError(f"condition must be 1 when d=1 (one eigenvalue), got condition={float(condition)!r}")
    return _key(key), condition, {"n": n, "d": d, "n_val": _n_val(n_val, n)}


def linear_regression(n, d, key, *, condition=10.0, noise=0.1, n_val=None) -> LinearRegressionData:
    r""":math:`y = Xw^\star + \sigma\varepsilon`, :math:`w^\star \sim N(0, I)`, cond(XᵀX/n) = ``condition``.

    Training inputs are X = √n·Q·diag(√λ)·Vᵀ (Q with orthonormal columns, V orthogonal, λ log-spaced from 1
    to κ), validation inputs Gaussian with covariance V diag(λ) Vᵀ; ``n_val`` defaults to ``n``.
    """
    key, condition, shapes = _regression_args(n, d, key, condition, n_val)
    return _regression(key, condition, _checks.nonnegative("noise", noise), **shapes, logistic=False)


def logistic_regression(n, d, key, *, condition=10.0, w_norm=3.0, n_val=None) -> LogisticRegressionData:
    """Logistic-model labels (int32 0/1) on the inputs of :func:`linear_regression`; ‖w*‖ = ``w_norm``."""
    key, condition, shapes = _regression_args(n, d, key, condition, n_val)
    return _regression(key, condition, _checks.nonnegative("w_norm", w_norm), **shapes, logistic=True)


# ---- real data ---------------------------------------------------------------------------------------------


@functools.cache
def _load_digits():
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    d = load_digits()
    return d.data.astype(np.float64), d.target.astype(np.int64)


def digits(seed=0) -> Dataset:
    """scikit-learn's 8×8 digits: 1,437 training / 360 validation images, stratified by class, shuffled.

    The split uses ``np.random.default_rng(seed)``; per class, the validation count is proportional (largest
    remainders). Each pixel is standardised with the training split's mean and standard deviation; pixels
    constant in training carry no information and are 0 in both splits. x float32 (n, 64), y int32.
    """
    seed = int(_checks.nonnegative_int("seed", seed))
    x, y = _load_digits()
    n_val = 360
    rng = np.random.default_rng(seed)
    counts = np.bincount(y)
    share = counts * n_val / len(y)
    per_class = np.floor(share).astype(int)
    per_class[np.argsort(-(share - per_class), kind="stable")[: n_val - per_class.sum()]] += 1
    val = np.concatenate([rng.permutation(np.flatnonzero(y == k))[:m] for k, m in enumerate(per_class)])
    train = rng.permutation(np.setdiff1d(np.arange(len(y)), val))
    val = rng.permutation(val)
    mean, std = x[train].mean(0), x[train].std(0)
    scale = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)

    def standardise(i):
        return jnp.asarray((x[i] - mean) * scale, jnp.float32), jnp.asarray(y[i], jnp.int32)

    return Dataset(*standardise(train), *standardise(val), name="digits", n_classes=10)


CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


def cifar10(path, *, n_train=None, n_val=None, subtract_mean=True) -> Dataset:
    """CIFAR-10 from the "python version" folder ``cifar-10-batches-py`` (never downloaded).

    Training: the first ``n_train`` of ``data_batch_1..5``; validation: the first ``n_val`` of ``test_batch``.
    x is float32 (n, 3072) in the file's order (1,024 red, green, blue values; an image is
    ``x.reshape(3, 32, 32)``), y int32. With ``subtract_mean`` (cs231n) the training mean image is subtracted
    from both splits and no scaling is done, so inputs keep pixel scale (σ ≈ 60).
    """
    n_train = None if n_train is None else _checks.positive_int("n_train", n_train, array=False)
    n_val = None if n_val is None else _checks.positive_int("n_val", n_val, array=False)
    folder = Path(path)
    missing = [f for f in CIFAR10_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 python batches not found in {str(folder)!r}: missing {', '.join(missing)}. "
            f"Expected the folder cifar-10-batches-py with {', '.join(CIFAR10_FILES)} "
            "(https://www.cs.toronto.edu/~kriz/cifar.html); nothing is downloaded."
        )

    def load(files, limit):
        xs, ys = [], []
        for f in files:
            if limit is not None and sum(map(len, ys)) >= limit:
                break  # the first batches suffice
            with open(folder / f, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], np.uint8))
            ys.append(np.asarray(batch[b"labels"], np.int64))
        x, y = np.concatenate(xs), np.concatenate(ys)
        if limit is not None and limit > len(y):
            raise ValueError(f"asked for {limit} examples, but {', '.join(files)} hold only {len(y)}")
        return x[:limit].astype(np.float32), y[:limit]

    x, y = load(CIFAR10_FILES[:5], n_train)
    x_val, y_val = load(CIFAR10_FILES[5:], n_val)
    if subtract_mean:
        mean = x.mean(0, dtype=np.float64).astype(np.float32)
        x, x_val = x - mean, x_val - mean
    f32, i32 = (lambda a: jnp.asarray(a, jnp.float32)), (lambda a: jnp.asarray(a, jnp.int32))
    return Dataset(f32(x), i32(y), f32(x_val), i32(y_val), name="cifar10", n_classes=10)


# ---- Wilson, Roelofs, Stern, Srebro & Recht (2017), §3.3: adaptive methods generalise worse ---------------


def _wilson_rows(y, offset, width):
    """Rows [y, 1, 1, 0, …]; example i's 5-column block starts at 3 + 5(offset + i): 1 set if y=1, 5 if −1."""
    n = y.shape[0]
    neg = (y < 0).astype(jnp.float32)
    block = jnp.concatenate([jnp.ones((n, 1)), jnp.broadcast_to(neg[:, None], (n, 4))], axis=1)
    unique = (jnp.eye(n)[:, :, None] * block[:, None, :]).reshape(n, 5 * n)
    head = jnp.stack([y, jnp.ones(n), jnp.ones(n)], axis=1)
    x = jnp.concatenate([head, jnp.zeros((n, 5 * offset)), unique], axis=1)
    return jnp.pad(x, ((0, 0), (0, width - x.shape[1])))


def wilson2017(n, p, key, n_test=None) -> Dataset:
    r"""Wilson et al.'s least-squares problem where AdaGrad/RMSProp/Adam generalise badly and SGD perfectly.

    :math:`y_i = +1` with probability ``p`` (else −1); :math:`x_{i1} = y_i`, :math:`x_{i2} = x_{i3} = 1`, then
    a block of 5 columns unique to example i starting at column 3 + 5i (0-indexed) with 1 feature set for a
    positive and 5 for a negative. Test points (``x_val``, ``y_val``; ``n_test`` defaults to ``n``) get fresh
    blocks after the training ones, so both have d = 3 + 5(n + n_test) columns. Labels are float32 ±1.
    If n₊ > n₋, X·sign(Xᵀy) = 4y and adaptive methods from 0 reach w ∝ sign(Xᵀy): every test point positive.
    """
    n = _checks.positive_int("n", n, array=False)
    p = _checks.real("p", p, lo=0.5, hi=1.0, lo_open=True, hi_open=True, rule="be in (0.5, 1)")
    n_test = _checks.positive_int("n_test", n if n_test is None else n_test, array=False)
    return _wilson2017(_key(key), p, n=n, n_test=n_test)


@functools.partial(jax.jit, static_argnames=("n", "n_test"))
def _wilson2017(key, p, *, n, n_test):
    k_train, k_test = jax.random.split(key)
    y = jnp.where(jax.random.uniform(k_train, (n,)) < p, 1.0, -1.0)
    y_test = jnp.where(jax.random.uniform(k_test, (n_test,)) < p, 1.0, -1.0)
    width = 3 + 5 * (n + n_test)
    x, x_test = _wilson_rows(y, 0, width), _wilson_rows(y_test, n, width)
    return Dataset(x, y, x_test, y_test, name="wilson2017", n_classes=2)


def wilson2017_min_norm(x, y) -> np.ndarray:
    r"""Minimum-norm interpolant :math:`X^\top(XX^\top)^{-1}y`, the limit of GD/SGD from 0; NumPy float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return x.T @ np.linalg.solve(x @ x.T, y)


def wilson2017_dual(n_pos, n_neg) -> dict:
    r"""Closed form of the min-norm solution's dual weights: ``a`` on each positive, ``−c′`` on each negative.

    :math:`c' = \frac{4n_+ + 1}{8n_+n_- + 3n_- + 15n_+ + 5}`, :math:`a = \frac{1 + c'n_-}{3n_+ + 1}`
    (papers.md §1). A fresh test point gets :math:`\langle w, x\rangle` = ``margin_pos`` = 1 − a if positive,
    ``margin_neg`` = −1 + 5c′ if negative: the min-norm solution classifies every test point correctly.
    """
    n_pos = _checks.positive_int("n_pos", n_pos, array=False)
    n_neg = int(_checks.nonnegative_int("n_neg", n_neg))
    c = (4 * n_pos + 1) / (8 * n_pos * n_neg + 3 * n_neg + 15 * n_pos + 5)
    a = (1 + c * n_neg) / (3 * n_pos + 1)
    return {"a": a, "c_prime": c, "margin_pos": 1 - a, "margin_neg": -1 + 5 * c}


# 1-D function fitting lives in its own module; re-exported here, last, since it builds on Dataset.
from lecture_lib.function_fit import (  # noqa: E402, F401
    DENSITIES,
    TARGETS,
    FunctionFit,
    FunctionFitData,
    function_fit,
    function_fit_problem,
)

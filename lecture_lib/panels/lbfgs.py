r"""L-BFGS in full batch vs on minibatches (recap slide "L-BFGS": "usually works very well in full batch ...
but does not transfer very well to mini-batch setting").

ℓ2-regularised logistic regression (``data.logistic_regression``). Three L-BFGS runs:

- full batch, with a backtracking Armijo line search (beside gradient descent at η = 1/L);
- naive minibatch: :math:`y = g_{k+1} - g_k` with the two gradients from *different* batches, fixed step η;
- same-batch minibatch (oLBFGS, Schraudolph et al. 2007): :math:`y = \nabla J_B(w_{k+1}) - \nabla J_B(w_k)`
  on the same batch :math:`B`, one extra gradient a step; :math:`s^\top y > 0` on a convex loss.

The history size ``m`` is a traced number here (``lecture_lib.second_order.lbfgs`` makes it a static
shape): the pairs live in a stack of ``M_MAX`` rows, the newest at row ``k - 1``, and the library's
``two_loop`` reads the ``k <= m`` newest. Moving the history slider therefore never compiles.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import data, plots, sampling
from lecture_lib.experiments_recap import logistic_optimum
from lecture_lib.panels.base import Panel, register
from lecture_lib.second_order import C1, MAX_TRIALS, MIN_CURVATURE, SHRINK, two_loop

_HI = jax.lax.Precision.HIGHEST
M_MAX = 20  # largest history size offered
N, D, CONDITION, LAM = 2000, 20, 100.0, 1e-3  # the problem: samples, features, cond(XᵀX/n), ℓ2 weight
BATCH, EPOCHS = 32, 5
LBFGS_STEPS, GD_STEPS = 40, 200  # full batch: L-BFGS is done long before 40 iterations
FLOOR = 1e-8  # float32 F against a float64 F*: gaps below this are rounding
VARIANTS = ("full batch", "naive minibatch", "same-batch minibatch")


class Problem(NamedTuple):
    x: jax.Array  # (n, d)
    y: jax.Array  # (n,) float 0/1
    lam: jax.Array  # ℓ2 weight
    L: jax.Array  # smoothness of the mean loss: λ_max(XᵀX/n)/4 + lam


def loss_fn(x, y, lam, keep=None):
    """Mean logistic loss over the rows of ``x`` (those with ``keep``) plus ½·lam·‖w‖²."""

    def F(w):
        z = jnp.matmul(x, w, precision=_HI)
        losses = jax.nn.softplus(z) - y * z
        mean = jnp.mean(losses) if keep is None else jnp.sum(jnp.where(keep, losses, 0.0)) / jnp.sum(keep)
        return mean + 0.5 * lam * jnp.sum(w * w)

    return F


def optimum(p: Problem) -> float:
    """F* by Newton's method in float64 NumPy (a reference independent of the code under test)."""
    return logistic_optimum(p.x, p.y, float(p.lam))


@functools.cache
def problem(seed: int = 0) -> tuple[Problem, float]:
    d = data.logistic_regression(N, D, jax.random.key(seed), condition=CONDITION)
    p = Problem(d.x_train, d.y_train.astype(jnp.float32), jnp.float32(LAM), d.eigenvalues[-1] / 4 + LAM)
    return p, optimum(p)


# ---- L-BFGS with a traced history size -----------------------------------------------------------------


class State(NamedTuple):
    S: jax.Array  # (M_MAX, n) steps s, newest at row k - 1
    Y: jax.Array  # (M_MAX, n) gradient differences y
    k: jax.Array  # int32 pairs stored (≤ m)
    w_prev: jax.Array
    g_prev: jax.Array
    t: jax.Array  # int32 updates done
    n_pairs: jax.Array  # int32 pairs formed
    n_bad: jax.Array  # int32 pairs with sᵀy ≤ 0


def init(w) -> State:
    zeros, i0 = jnp.zeros((M_MAX, w.size), w.dtype), jnp.zeros((), jnp.int32)
    return State(zeros, zeros, i0, w, jnp.zeros_like(w), i0, i0, i0)


def _push(stack, k, m, v):
    """Append ``v`` after the ``k`` stored rows; when ``m`` are stored drop the oldest (row 0) first."""
    rows = jnp.arange(M_MAX)
    shifted = jnp.where((rows < m - 1)[:, None], stack[jnp.minimum(rows + 1, M_MAX - 1)], stack)
    return jnp.where(k >= m, shifted.at[m - 1].set(v), stack.at[jnp.minimum(k, M_MAX - 1)].set(v))


def _store(state: State, m, s, y, formed):
    sy = jnp.sum(s * y)
    formed = formed & jnp.any(s != 0)
    keep = formed & (sy > MIN_CURVATURE)
    S = jnp.where(keep, _push(state.S, state.k, m, s), state.S)
    Y = jnp.where(keep, _push(state.Y, state.k, m, y), state.Y)
    k = jnp.where(keep, jnp.minimum(state.k + 1, m), state.k)
    n_bad = state.n_bad + (formed & (sy <= 0)).astype(jnp.int32)
    return state._replace(S=S, Y=Y, k=k, n_pairs=state.n_pairs + formed.astype(jnp.int32), n_bad=n_bad)


def update(state: State, w, g, J, m, eta, *, same_batch: bool, line_search: bool):
    """One L-BFGS step on objective ``J`` (gradient ``g`` at ``w``) by the rules of ``second_order.LBFGS``."""
    if not same_batch:  # the pair from the previous step, seen only now through this call's g
        state = _store(state, m, w - state.w_prev, g - state.g_prev, state.t > 0)
    d = -two_loop(state.S, state.Y, state.k, g)
    alpha = jnp.where(state.k == 0, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))), 1.0) * eta
    ok = jnp.asarray(True)
    if line_search:
        E0, slope = J(w), jnp.sum(g * d)

        def cond(carry):
            i, _, ok = carry
            return ~ok & (i < MAX_TRIALS)

        def body(carry):
            i, alpha, _ = carry
            alpha = SHRINK * alpha
            return i + 1, alpha, J(w + alpha * d) <= E0 + C1 * alpha * slope

        first = J(w + alpha * d) <= E0 + C1 * alpha * slope
        _, alpha, ok = jax.lax.while_loop(cond, body, (jnp.asarray(1, jnp.int32), alpha, first))
        alpha = jnp.where(ok, alpha, 0.0)
    w_new = w + alpha * d
    if same_batch:
        state = _store(state, m, w_new - w, jax.grad(J)(w_new) - g, jnp.asarray(True))
    state = state._replace(k=jnp.where(ok, state.k, 0), w_prev=w, g_prev=g, t=state.t + 1)
    return w_new, state


# ---- the experiment --------------------------------------------------------------------------------------


class Runs(NamedTuple):
    full_lbfgs: np.ndarray  # (LBFGS_STEPS + 1,) F(w_k) − F*
    full_gd: np.ndarray  # (GD_STEPS + 1,)
    naive: np.ndarray  # (updates + 1,) F(w_k) − F* after each minibatch update
    same_batch: np.ndarray
    bad_share: np.ndarray  # (3,) share of pairs with sᵀy ≤ 0: full batch, naive, same batch


@functools.partial(jax.jit, static_argnames=("b", "epochs", "lbfgs_steps", "gd_steps"))
def _runs(p: Problem, m, eta, key, *, b, epochs, lbfgs_steps, gd_steps):
    F = loss_fn(p.x, p.y, p.lam)
    grad_F = jax.grad(F)
    w0 = jnp.zeros(p.x.shape[1])

    def full_lbfgs(carry, _):
        w, s = carry
        w, s = update(s, w, grad_F(w), F, m, 1.0, same_batch=False, line_search=True)
        return (w, s), F(w)

    (_, s_full), f_lbfgs = jax.lax.scan(full_lbfgs, (w0, init(w0)), None, length=lbfgs_steps)
    eta_gd = 1.0 / p.L
    _, f_gd = jax.lax.scan(lambda w, _: (w - eta_gd * grad_F(w),) * 2, w0, None, length=gd_steps)
    f_gd = jax.vmap(F)(f_gd)

    idx, mask = (a.reshape(-1, b) for a in sampling._batches(key, p.x.shape[0], b, epochs, "reshuffle"))

    def minibatch(same_batch):
        def step(carry, batch):
            w, s = carry
            J = loss_fn(p.x[batch[0]], p.y[batch[0]], p.lam, batch[1])
            w, s = update(s, w, jax.grad(J)(w), J, m, eta, same_batch=same_batch, line_search=False)
            return (w, s), F(w)

        (_, s), f = jax.lax.scan(step, (w0, init(w0)), (idx, mask))
        return f, s

    f_naive, s_naive = minibatch(False)
    f_same, s_same = minibatch(True)
    F0 = F(w0)[None]
    shares = jnp.stack([s.n_bad / jnp.maximum(s.n_pairs, 1) for s in (s_full, s_naive, s_same)])
    curves = [jnp.concatenate([F0, f]) for f in (f_lbfgs, f_gd, f_naive, f_same)]
    return curves, shares


def runs(memory=10, eta=0.05, seed=0, *, batch=BATCH, epochs=EPOCHS) -> Runs:
    """The four runs on ``problem(0)`` for history size ``memory`` ≤ M_MAX and minibatch step ``eta``.

    ``seed`` picks the minibatch order. Gaps F − F* are float64 NumPy (nan where a run blew up).
    """
    p, f_star = problem(0)
    m = jnp.asarray(int(np.clip(memory, 1, M_MAX)), jnp.int32)
    shapes = dict(b=batch, epochs=epochs, lbfgs_steps=LBFGS_STEPS, gd_steps=GD_STEPS)
    curves, shares = _runs(p, m, jnp.float32(eta), jax.random.key(seed), **shapes)
    gaps = [np.asarray(c, np.float64) - f_star for c in curves]
    return Runs(*gaps, np.asarray(shares, np.float64))


def iterations_to(gap, tol) -> int:
    """First iteration with F − F* ≤ tol, −1 if none."""
    hit = np.asarray(gap) <= tol
    return int(np.argmax(hit)) if hit.any() else -1


def _gap(g):
    """Gaps for a log axis: rounding-level ones at the floor, non-finite ones (a blown-up run) as gaps."""
    g = np.asarray(g, np.float64)
    return np.where(np.isfinite(g), np.maximum(g, FLOOR), np.nan)


GREY, DARK = plots.color("L-BFGS"), "#333333"


@register("lbfgs_minibatch")
class LBFGSMinibatch(Panel):
    """Full batch (left), minibatch (middle), share of curvature pairs with sᵀy ≤ 0 (right)."""

    def build(self):
        style, wide = {"description_width": "190px"}, widgets.Layout(width="470px")
        c = self.controls
        c["memory"] = widgets.IntSlider(
            value=10, min=1, max=M_MAX, description="history size m (pairs)", style=style, layout=wide
        )
        c["eta"] = widgets.FloatLogSlider(
            value=0.05,
            base=10,
            min=-3,
            max=0,
            step=0.05,
            description="minibatch step η",
            readout_format=".3g",
            style=style,
            layout=wide,
        )
        c["seed"] = widgets.IntSlider(
            value=0, min=0, max=9, description="minibatch order seed", style=style, layout=wide
        )
        fig = make_subplots(
            rows=1,
            cols=3,
            column_widths=[0.37, 0.37, 0.26],
            horizontal_spacing=0.08,
            subplot_titles=("full batch", f"minibatches of {BATCH}: fixed step η", "pairs with sᵀy ≤ 0"),
        )
        line = dict(mode="lines", line=dict(width=3))
        fig.add_trace(go.Scatter(**line).update(line_color=GREY), 1, 1)  # 0 full-batch L-BFGS
        fig.add_trace(go.Scatter(**line).update(line_color=plots.color("SGD")), 1, 1)  # 1 GD
        fig.add_trace(go.Scatter(**line).update(line=dict(color=GREY, dash="dot")), 1, 2)  # 2 naive
        fig.add_trace(go.Scatter(**line).update(line=dict(color=DARK, dash="dash")), 1, 2)  # 3 same batch
        bars = go.Bar(
            x=["full batch", "naive", "same batch"], marker_color=[GREY, GREY, DARK], showlegend=False
        )
        fig.add_trace(bars.update(textposition="outside", textfont_size=15, cliponaxis=False), 1, 3)  # 4
        title = f"L-BFGS on logistic regression (n={N}, d={D}, λ={LAM:g}): full batch vs minibatches"
        fig.update_layout(**plots.base_layout(title, height=600))
        fig.update_layout(legend=dict(y=-0.15))
        fig.update_xaxes(title_text="iteration k", row=1, col=1)
        fig.update_xaxes(title_text="epoch (passes over the data)", row=1, col=2)
        for col in (1, 2):
            fig.update_yaxes(type="log", exponentformat="power", range=[-8.5, 1.5], row=1, col=col)
        fig.update_yaxes(title_text="F(w) − F*", row=1, col=1)
        fig.update_yaxes(title_text="share of pairs (%)", range=[0, 100], row=1, col=3)
        self.figure = go.FigureWidget(fig)
        self.L = float(problem(0)[0].L)
        self.widget = widgets.VBox([widgets.HBox([c["memory"], c["eta"]]), c["seed"], self.figure])

    def update(self, changed: str | None = None):
        c = self.controls
        m, eta, seed = int(c["memory"].value), float(c["eta"].value), int(c["seed"].value)
        r = runs(m, eta, seed)
        self.result = r
        n_updates = r.naive.size - 1
        epochs = np.arange(n_updates + 1) * (EPOCHS / n_updates)
        hit = iterations_to(r.full_lbfgs, 1e-4)
        data = self.figure.data
        with self.figure.batch_update():
            data[0].x, data[0].y = np.arange(r.full_lbfgs.size), _gap(r.full_lbfgs)
            reached = f"F − F* ≤ 10⁻⁴ at k = {hit}" if hit >= 0 else f"F − F* > 10⁻⁴ at k = {LBFGS_STEPS}"
            data[0].name = f"L-BFGS, full batch (m={m}, line search): {reached}"
            data[1].x, data[1].y = np.arange(r.full_gd.size), _gap(r.full_gd)
            gd_end = f"F − F* = {r.full_gd[-1]:.1e} at k = {GD_STEPS}"
            data[1].name = f"GD, full batch (η = 1/L = {1 / self.L:.3g}): {gd_end}"
            for i, (gap, label) in enumerate(((r.naive, "naive"), (r.same_batch, "same-batch"))):
                final = gap[-1]
                end = f"{final:.1e}" if np.isfinite(final) else "blew up"
                data[2 + i].x, data[2 + i].y = epochs, _gap(gap)
                data[2 + i].name = f"{label} minibatch L-BFGS (m={m}, η={eta:.3g}): final F − F* {end}"
            share = 100 * r.bad_share
            data[4].y, data[4].text = share, [f"{v:.0f}%" for v in share]

"""Behaviour of notebook 02's panels beyond the generic panel test: the numbers they draw are the ones the
slides and the papers say, recomputed here independently (by hand, with ``ll.run``/``ll.training.fit``, or
from closed forms)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lecture_lib as ll
from lecture_lib.panels import PANELS, in_practice, wilson
from lecture_lib.panels.adaptive import DEFAULT_LRS


@pytest.fixture(scope="module")
def inside():
    return PANELS["adaptive_step"]()


def _replay(opt, surface, steps):
    """The optimizer stepped from a Python loop: (w_k, g_k, state after update k+1) for k < steps."""
    w = jnp.asarray(surface.start)
    state = opt.init(w)
    out = []
    for _ in range(steps):
        g = jax.grad(surface)(w)
        w_new, state = opt.update(g, state, w)
        out.append((np.asarray(w), np.asarray(g), state, np.asarray(w_new)))
        w = w_new
    return out


@pytest.mark.parametrize("bias_correction", [True, False])
def test_adam_effective_rate_is_eta_over_root_v_hat_recomputed_by_hand(inside, bias_correction):
    with inside.hold():
        inside.controls["optimizer"].value = "Adam"
        inside.controls["bias_correction"].value = bias_correction
    eta = inside.controls["lr"].value
    r = inside.result()
    b1, b2, eps = 0.9, 0.999, 1e-8
    opt = ll.optimizers.adam(eta, bias_correction=bias_correction)
    for k, (w, g, state, w_new) in enumerate(_replay(opt, inside.surface, 12)):
        t = k + 1
        m, v = np.asarray(state.m, np.float64), np.asarray(state.v, np.float64)
        m_hat, v_hat = (m / (1 - b1**t), v / (1 - b2**t)) if bias_correction else (m, v)
        eff = eta / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(r.w[k], w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r.g[k], g, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(r.m_hat[k], m_hat, rtol=1e-4)
        np.testing.assert_allclose(r.eff_lr[k], eff, rtol=1e-4)
        np.testing.assert_allclose(r.step[k], -eff * m_hat, rtol=1e-3, atol=1e-7)
        np.testing.assert_allclose(r.step[k], w_new - w, rtol=1e-4, atol=1e-6)
    first = np.abs(r.step[0])
    expected = eta if bias_correction else eta * (1 - b1) / np.sqrt(1 - b2)  # 3.16 η without correction
    np.testing.assert_allclose(first, expected, rtol=1e-4)
    with inside.hold():
        inside.controls["bias_correction"].value = True


@pytest.mark.parametrize("label", ["AdaGrad", "RMSProp", "SGD"])
def test_other_optimizers_effective_rates(inside, label):
    inside.controls["optimizer"].value = label  # resets the rate to the optimizer's default
    r = inside.result()
    eta = DEFAULT_LRS[label]
    g = r.g.astype(np.float64)
    if label == "AdaGrad":
        expected = eta / (np.sqrt(np.cumsum(g * g, axis=0)) + 1e-10)
    elif label == "RMSProp":
        v, rows = np.zeros(2), []
        for gk in g:
            v = 0.99 * v + 0.01 * gk * gk
            rows.append(eta / (np.sqrt(v) + 1e-8))
        expected = np.array(rows)
    else:
        expected = np.full_like(g, eta)
    finite = np.isfinite(r.eff_lr).all(axis=1)
    np.testing.assert_allclose(r.eff_lr[finite][:50], expected[finite][:50], rtol=1e-3)
    inside.controls["optimizer"].value = "Adam"


def test_adaptive_arrows_point_along_minus_g_minus_m_hat_and_the_step(inside):
    inside.controls["step"].value = 5
    r, data = inside.result(), inside.figure.data
    for trace, direction in zip(data[3:6], (-r.g[5], -r.m_hat[5], r.step[5])):
        d = np.array([trace.x[1] - trace.x[0], trace.y[1] - trace.y[0]])
        np.testing.assert_allclose(d / np.linalg.norm(d), direction / np.linalg.norm(direction), atol=1e-5)
        np.testing.assert_allclose([trace.x[0], trace.y[0]], r.w[5], atol=1e-6)


def test_adam_moves_evenly_on_an_axis_aligned_valley_but_not_a_rotated_one(inside):
    inside.controls["angle"].value = 0.0
    even = np.abs(inside.result().step[:10])
    assert np.all(np.abs(even[:, 0] / even[:, 1] - 1) < 0.05)
    inside.controls["angle"].value = 45.0
    rates = inside.result().eff_lr[:10]
    np.testing.assert_allclose(rates[:, 0], rates[:, 1], rtol=1e-2)  # about the same in both coordinates
    inside.controls["angle"].value = 0.0


# -- the noise fan ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fan():
    return PANELS["noise_fan"](surface="quadratic")


def test_fan_mean_of_sgd_is_the_noise_free_path_on_a_quadratic(fan):
    f = fan.fans["SGD"]
    se = f.params.std(axis=0)[1:] / np.sqrt(fan.runs)
    z = np.abs(f.mean - f.clean)[1:] / se
    assert z.max() < 4.5  # the noise enters linearly: E[w_k] follows the noise-free recursion
    clean = ll.run(ll.optimizers.sgd(0.03), ll.surfaces.SURFACES["quadratic"], [-4.0, 3.0], fan.steps)
    np.testing.assert_allclose(f.clean, clean.params, rtol=1e-6)


def test_fan_spread_grows_in_proportion_to_sigma_for_sgd(fan):
    fan.controls["noise"].value = 1.0
    s1 = fan.fans["SGD"].params[:, -1].std(axis=0)
    fan.controls["noise"].value = 4.0
    s4 = fan.fans["SGD"].params[:, -1].std(axis=0)
    np.testing.assert_allclose(s4 / s1, 4.0, rtol=1e-3)
    assert fan.fans["Adam"].params[:, -1].std(axis=0).sum() > 0


def test_fan_draws_the_cloud_of_every_run_at_iteration_k(fan):
    with fan.hold():
        fan.controls["show"].value = "Adam"
        fan.controls["step"].value = 17
    i = fan._trace("Adam")
    cloud = fan.figure.data[i + 1]
    np.testing.assert_allclose(cloud.x, fan.fans["Adam"].params[:, 17, 0])
    assert len(cloud.x) == fan.runs
    assert fan.figure.data[fan._trace("SGD")].visible is False


def test_fan_matches_vmapped_ll_run():
    surface = ll.surfaces.SURFACES["saddle"]
    panel = PANELS["noise_fan"](surface="saddle", runs=8)
    sigma = panel.controls["noise"].value
    k = panel.keys[3]
    one = ll.run(ll.optimizers.adam(0.03), surface, surface.start, panel.steps, noise=sigma, key=k)
    np.testing.assert_allclose(panel.fans["Adam"].params[3], one.params, rtol=1e-5, atol=1e-6)


# -- Wilson et al. ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "p", "seed"), [(40, 0.6, 1), (100, 0.6, 2), (12, 0.8, 3)])
def test_wilson_panel_shows_the_closed_form_facts(n, p, seed):
    panel = PANELS["wilson_generalization"](n=n, p=p, seed=seed)
    out = panel.outcome
    y, y_test = out["y"], out["y_test"]
    assert (y > 0).sum() > (y < 0).sum()
    neg = np.mean(y_test < 0)
    shown = {m: panel.figure.data[i].y[-1] for i, m in enumerate(wilson.METHODS)}
    assert shown["GD"] == 0.0
    for m in ("AdaGrad", "RMSProp", "Adam"):
        assert shown[m] == neg
        assert out["results"][m].train_error == 0.0
    x = wilson.dense_x(y)
    sign = np.sign(x.T @ y)
    for m in ("AdaGrad", "RMSProp", "Adam"):
        w = wilson.flat(out["results"][m].head, out["results"][m].blocks, n)
        assert w @ sign / (np.linalg.norm(w) * np.linalg.norm(sign)) > 0.999
    w_gd = wilson.flat(out["results"]["GD"].head, out["results"]["GD"].blocks, n)
    w_mn = ll.data.wilson2017_min_norm(x, y)
    assert np.linalg.norm(w_gd - w_mn) < 1e-3 * np.linalg.norm(w_mn)
    dual = ll.data.wilson2017_dual(int((y > 0).sum()), int((y < 0).sum()))
    h = out["results"]["GD"].head
    np.testing.assert_allclose(
        [h.sum(), -h[0] + h[1] + h[2]], [dual["margin_pos"], dual["margin_neg"]], atol=1e-4
    )


def test_wilson_masked_solver_equals_the_dense_problem_run_with_ll_run():
    n, p, seed, steps = 8, 0.7, 1, 400
    out = wilson.solve(n, p, seed, steps=steps)
    y = out["y"]
    x = jnp.asarray(wilson.dense_x(y), jnp.float32)
    yj = jnp.asarray(y, jnp.float32)

    def E(w):
        return 0.5 * jnp.sum((x @ w - yj) ** 2)

    opts = [ll.optimizers.sgd(wilson.gd_rate(y, n)), ll.optimizers.adam(1e-3)]
    for m, t in zip(("GD", "Adam"), ll.run_many(opts, E, jnp.zeros(x.shape[1]), steps)):
        w = wilson.flat(out["results"][m].head, out["results"][m].blocks, n)
        np.testing.assert_allclose(w, t.params[-1], rtol=1e-4, atol=1e-5)


def test_wilson_moving_n_changes_data_not_code(count_compiles):
    panel = PANELS["wilson_generalization"]()
    with count_compiles() as c:
        for n in (2, 100, 57):
            panel.controls["n"].value = n
    assert c.count == 0
    assert np.all(panel.outcome["results"]["Adam"].blocks[57:] == 0)  # masked rows: no gradient, no move


# -- in practice ------------------------------------------------------------------------------------------


def test_lr_sensitivity_entry_equals_a_single_fit():
    panel = PANELS["lr_sensitivity"]()
    i = in_practice.LRS.index(min(in_practice.LRS, key=lambda lr: abs(lr - 1e-2)))
    hist = ll.training.fit(
        ll.models.mlp(list(in_practice.SIZES)),
        ll.data.digits(seed=0),
        ll.optimizers.adam(in_practice.LRS[i]),
        epochs=in_practice.EPOCHS,
        batch_size=in_practice.BATCH_SIZE,
        key=jax.random.key(in_practice.SEEDS[1]),
    )
    np.testing.assert_allclose(panel.sweeps["Adam"].val_acc[i, 1], hist.val_acc, atol=1e-6)


def test_lr_sensitivity_legend_counts_the_good_rates():
    panel = PANELS["lr_sensitivity"]()
    panel.controls["threshold"].value = 0.9
    for j, (label, sweep) in enumerate(panel.sweeps.items()):
        good = in_practice.usable(sweep, 0.9, panel.epochs)
        mean = panel.figure.data[6 * j + 2]
        assert mean.name.startswith(f"{label}: good at {good.sum()} of {len(good)} rates")
        np.testing.assert_allclose(mean.y, sweep.val_acc[:, :, -1].mean(axis=1))
    good = {k: in_practice.usable(s, 0.9, panel.epochs).sum() for k, s in panel.sweeps.items()}
    assert good["Adam"] > good["momentum"] and good["Adam"] > good["SGD"]

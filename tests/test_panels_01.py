"""Behaviour of notebook 01's panels beyond the generic test: what they draw agrees with the library and with
closed forms, and the lecture's claims hold in them."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

import lecture_lib as ll
import lecture_lib.experiments_recap as R
from lecture_lib import experiments_lbfgs
from lecture_lib.panels import PANELS, conditioning, hessian_cost, lbfgs, newton, taylor


@pytest.fixture(scope="module")
def taylor_panel():
    return PANELS["taylor_models"]()


@pytest.fixture(scope="module")
def conditioning_panel():
    return PANELS["conditioning"]()


@pytest.fixture(scope="module")
def newton_panel():
    return PANELS["newton_nonconvex"]()


@pytest.fixture(scope="module")
def lbfgs_panel():
    return PANELS["lbfgs_minibatch"]()


# ---- linear vs quadratic model ---------------------------------------------------------------------------


def test_taylor_newton_arrow_ends_at_the_minimum_of_a_quadratic(taylor_panel):
    p = taylor_panel
    with p.hold():
        p.controls["curve"].value = "quadratic"
        p.controls["w"].value = -1.5
    with p.hold():
        p.controls["surface"].value = "quadratic"
    with p.hold():
        p.controls["w1"].value, p.controls["w2"].value = 3.0, -2.0
    newton_1d, newton_2d = p.figure.data[5], p.figure.data[12]
    assert newton_1d.x[-1] == pytest.approx(1.0, abs=1e-5)  # E = (w − 1)² + ½
    np.testing.assert_allclose([newton_2d.x[-1], newton_2d.y[-1]], [0.0, 0.0], atol=1e-4)
    assert "minimum" in p.figure.layout.annotations[1].text


def test_taylor_models_are_tangent_and_osculating(taylor_panel):
    p = taylor_panel
    with p.hold():
        p.controls["curve"].value = "log cosh"
        p.controls["w"].value = 0.8
    ws = np.asarray(p.figure.data[0].x, float)
    E1, E2 = (np.asarray(p.figure.data[i].y, float) for i in (1, 2))
    line, parabola = np.polyfit(ws, E1, 1), np.polyfit(ws, E2, 2)
    # both touch E at w₀; the tangent's slope is E′ = tanh w₀, the parabola's curvature E″ = 1/cosh² w₀
    for model in (line, parabola):
        assert np.polyval(model, 0.8) == pytest.approx(math.log(math.cosh(0.8)), abs=1e-5)
    assert line[0] == pytest.approx(math.tanh(0.8), rel=1e-4)
    assert 2 * parabola[0] == pytest.approx(1 / math.cosh(0.8) ** 2, rel=1e-4)


def test_taylor_names_a_maximum_when_the_curvature_is_negative(taylor_panel):
    p = taylor_panel
    with p.hold():
        p.controls["curve"].value = "double well"
        p.controls["w"].value = 0.3  # E″ = 3w² − 2 < 0
    assert "maximum" in p.figure.layout.annotations[0].text
    with p.hold():
        p.controls["surface"].value = "saddle"
    assert "H indefinite" in p.figure.layout.annotations[1].text  # at the default point (−1.2, 0.3)


def test_taylor_surface_change_puts_the_point_inside_the_new_bounds(taylor_panel):
    p = taylor_panel
    for name in taylor.SURFACE_CHOICES:
        p.controls["surface"].value = name
        (x0, x1), (y0, y1) = taylor.SURFACE_CHOICES[name].bounds
        assert (p.controls["w1"].min, p.controls["w1"].max) == (x0, x1)
        assert (p.controls["w2"].min, p.controls["w2"].max) == (y0, y1)
        assert (p.controls["w1"].value, p.controls["w2"].value) == pytest.approx(taylor.DEFAULT_POINT[name])


# ---- poor conditioning -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kappa, angle", [(20.0, 30.0), (300.0, 120.0)])
def test_conditioning_draws_the_eigen_axes_of_the_hessian(conditioning_panel, kappa, angle):
    p = conditioning_panel
    with p.hold():
        p.controls["kappa"].value, p.controls["angle"].value = kappa, angle
    surface = ll.surfaces.quadratic(kappa, math.radians(angle))
    lam, Q = (np.asarray(a) for a in ll.curvature.spectrum(surface, jnp.zeros(2)))
    np.testing.assert_allclose(lam, [1.0, kappa], rtol=1e-4)
    axes = p.figure.data[1]
    x, y = np.asarray(axes.x[:6], float), np.asarray(axes.y[:6], float)  # two segments, None-separated
    for i, (a, b) in enumerate(((0, 1), (3, 4))):
        half = 0.5 * np.array([x[b] - x[a], y[b] - y[a]])
        assert np.linalg.norm(half) == pytest.approx(4 / math.sqrt(lam[i]), rel=1e-4)
        assert abs(half @ Q[:, i]) / np.linalg.norm(half) == pytest.approx(1.0, abs=1e-5)  # parallel
    assert f"λ={kappa:.4g}" in axes.text[4]
    a = math.radians(angle)  # λ = 1 lies along (cos α, sin α)
    assert abs(Q[:, 0] @ [math.cos(a), math.sin(a)]) == pytest.approx(1, abs=1e-5)


def test_conditioning_labels_divergence_beyond_two_over_lambda_max(conditioning_panel):
    p = conditioning_panel
    with p.hold():
        p.controls["kappa"].value, p.controls["angle"].value, p.controls["momentum"].value = (
            100.0,
            30.0,
            False,
        )
        p.controls["eta"].value = 1.05 * 2 / 100
    assert "diverged at step" in p.run_name
    assert "stable: η < 2/λ_max = 0.02" in p.figure.data[8].name
    p.controls["eta"].value = 0.95 * 2 / 100
    assert "diverged" not in p.run_name and "steps to tolerance" in p.run_name


def test_conditioning_sweep_legend_shows_the_fitted_slopes(conditioning_panel):
    # the claim itself (steps ∝ κ, ∝ √κ) is checked on the library in test_experiments_recap.py
    counts, slopes = conditioning._cached_sweep()
    assert np.all(counts[False] > 0) and np.all(counts[True] > 0)
    assert slopes[False] == pytest.approx(1.0, abs=0.1) and slopes[True] == pytest.approx(0.5, abs=0.1)
    names = [conditioning_panel.figure.data[i].name for i in (5, 6)]
    assert names == [f"{conditioning.SWEEP_NAMES[m]}: steps ∝ κ^{slopes[m]:.2f}" for m in (False, True)]


def test_conditioning_run_matches_the_sweep_at_the_best_parameters(conditioning_panel):
    p = conditioning_panel
    counts, _ = conditioning._cached_sweep()
    kappa = float(conditioning.KAPPAS[19])
    for momentum in (False, True):
        eta = float(R.best_parameters(kappa, momentum)[0])
        with p.hold():
            p.controls["kappa"].value, p.controls["angle"].value = kappa, 30.0
            p.controls["momentum"].value, p.controls["eta"].value = momentum, eta
        assert int(p.figure.data[7].y[0]) == pytest.approx(counts[momentum][19], abs=1)


# ---- Newton on non-convex surfaces -----------------------------------------------------------------------


@pytest.mark.parametrize("name", newton.CHOICES)
def test_newton_stationary_points_are_what_the_panel_says(name):
    s = ll.surfaces.SURFACES[name]
    for points, kind in ((newton.SADDLES[name], "saddle"), (newton.MAXIMA[name], "max")):
        for w in points:
            g = np.asarray(ll.curvature.gradient(s, jnp.asarray(w, jnp.float32)))
            lam = np.asarray(ll.curvature.spectrum(s, jnp.asarray(w, jnp.float32))[0])
            assert np.linalg.norm(g) < 1e-3 * max(1.0, abs(lam).max())
            assert (lam[0] < 0 < lam[1]) if kind == "saddle" else (lam[1] < 0)


def test_newton_damping_changes_the_limit_point(newton_panel):
    p = newton_panel
    p.controls["surface"].value = "saddle"
    p.controls["delta"].value = 0.0
    assert p.outcomes == ["a SADDLE point", "a SADDLE point"]
    assert len(p.figure.data[3].x) > 0  # H + δI is indefinite at the start: marked
    p.controls["delta"].value = 1.0  # > −λ_min(H(w₀)) = 0.73
    assert p.outcomes == ["a SADDLE point", "a minimum"]
    end = np.array([p.figure.data[2].x[-1], p.figure.data[2].y[-1]])
    assert np.min(np.linalg.norm(ll.surfaces.SURFACES["saddle"].minima - end, axis=1)) < 1e-4
    assert len(p.figure.data[3].x) == 0


def test_newton_climbs_to_himmelblaus_maximum_without_damping(newton_panel):
    p = newton_panel
    p.controls["surface"].value = "himmelblau"  # start (0, 0), δ = 50 by default
    assert p.outcomes == ["a MAXIMUM", "a minimum"]
    plain = p.figure.data[1]
    np.testing.assert_allclose([plain.x[-1], plain.y[-1]], newton.MAXIMA["himmelblau"][0], atol=1e-4)
    losses = np.asarray(p.figure.data[8].y)
    assert losses[-1] > losses[0]  # the loss went up


# ---- L-BFGS ----------------------------------------------------------------------------------------------


def test_lbfgs_panel_draws_the_library_runs(lbfgs_panel):
    # the traced-history L-BFGS and the claims are checked on the library in test_experiments_lbfgs.py
    lbfgs_panel.controls["memory"].value = 10
    r = experiments_lbfgs.runs(10, 0.05, 0)
    np.testing.assert_array_equal(lbfgs_panel.result.bad_share, r.bad_share)
    data = lbfgs_panel.figure.data
    np.testing.assert_allclose(data[0].y, np.maximum(r.full_lbfgs, lbfgs.FLOOR))
    np.testing.assert_allclose(data[4].y, 100 * r.bad_share)


@pytest.mark.parametrize("m", [1, 3, 20])
def test_lbfgs_same_batch_pairs_always_have_positive_curvature(lbfgs_panel, m):
    lbfgs_panel.controls["memory"].value = m
    assert lbfgs_panel.result.bad_share[2] == 0.0
    assert f"m={m}" in lbfgs_panel.figure.data[3].name


# ---- the cost of the Hessian -----------------------------------------------------------------------------


def test_hessian_cost_bytes_and_extrapolation():
    assert hessian_cost.dense_hessian_bytes(1e6) == 4e12
    assert hessian_cost.human_bytes(hessian_cost.dense_hessian_bytes(1e6)) == "4 TB"
    assert hessian_cost.human_bytes(hessian_cost.dense_hessian_bytes(1e8)) == "40 PB"
    seconds = np.array([[1e-3, 4e-3], [1e-3, 8e-3], [1e-5, 2e-5]])
    cost = hessian_cost.HessianCost(np.array([100, 200]), seconds, np.ones((3, 2)))
    np.testing.assert_allclose(hessian_cost.slopes(cost), [2.0, 3.0, 1.0])
    np.testing.assert_allclose(hessian_cost.extrapolate(cost, [200, 400])[:, 1], [1.6e-2, 6.4e-2, 4e-5])


def test_hessian_cost_measures_small_sizes():
    cost = hessian_cost.measure(sizes=(20, 40))
    assert list(cost.n) == [21, 41]
    assert np.all(cost.seconds > 0) and np.all(np.isfinite(cost.seconds))
    assert np.all(cost.bytes[0] >= 4 * cost.n**2)  # the Hessian itself is in the output
    # operation counts: forming H is about n HVPs (forward-over-reverse), each a few times the loss's O(n)
    per_hvp = cost.flops[0] / cost.flops[2] / cost.n
    assert np.all((0.9 < per_hvp) & (per_hvp < 1.6)), per_hvp  # the gradient's share is larger at small n
    np.testing.assert_allclose(cost.flops[1], 2 * cost.n**3 / 3 + 2 * cost.n**2)


def test_hessian_cost_operation_counts_grow_as_the_textbook_says():
    cost = hessian_cost.measure(sizes=(100, 200, 400))
    np.testing.assert_allclose(hessian_cost.slopes(cost, of="flops"), [2.0, 3.0, 1.0], atol=0.06)
    with pytest.raises(ValueError, match="of must be"):
        hessian_cost.slopes(cost, of="bytes")
    with pytest.raises(ValueError, match="no operation counts"):
        hessian_cost.slopes(cost._replace(flops=None), of="flops")
    fig = hessian_cost.figure(cost)
    assert fig.layout.font.size >= 14 and fig.layout.title.text


def test_tanh_net_from_a_seed_is_numpy_drawn_and_deterministic():
    loss, w = hessian_cost.tanh_net(10, seed=0)
    loss2, w2 = hessian_cost.tanh_net(10, seed=0)
    assert w.shape == (101,) and w.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(w), np.asarray(w2))
    assert float(loss(w)) == float(loss2(w2)) and np.isfinite(float(loss(w)))
    assert not np.array_equal(np.asarray(hessian_cost.tanh_net(10, seed=1)[1]), np.asarray(w))

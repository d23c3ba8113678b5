"""Behaviour of notebook 04's panels (SGD convergence) beyond the generic test: what they draw agrees with the
library and the closed forms, and the lecture's claims hold in them."""

from __future__ import annotations

import numpy as np
import pytest

import lecture_lib as ll
from lecture_lib.panels import PANELS
from lecture_lib.panels import sgd_convergence as sc


@pytest.fixture(scope="module")
def noise_ball():
    return PANELS["sgd_noise_ball"]()


@pytest.fixture(scope="module")
def robbins_monro():
    return PANELS["robbins_monro"]()


def test_noise_ball_draws_the_exact_plateau_and_the_measured_points_agree(noise_ball):
    p = noise_ball
    p.controls["eta"].value = 0.1
    exact_line = p.figure.data[5]
    x, y = np.asarray(exact_line.x), np.asarray(exact_line.y)
    np.testing.assert_allclose(y, 10 * x / (2 * (2 - x)), rtol=1e-5)
    assert np.all(np.asarray(p.figure.data[6].y) >= y * (1 - 1e-6))  # the BCN bound is above
    measured = np.asarray(p.figure.data[7].y)
    exact = np.array([ll.experiments_sgd.quadratic_plateau(float(a)) for a in sc.PLATEAU_ETAS])
    np.testing.assert_allclose(measured / exact, 1.0, atol=0.05)
    assert p.figure.data[8].x[0] == pytest.approx(0.1, rel=1e-5)
    assert p.figure.data[9].x[0] == pytest.approx(0.025, rel=1e-5)


def test_halving_eta_halves_the_plateau_for_small_eta():
    F = sc.measured_plateaus()
    small = sc.PLATEAU_ETAS[1:] <= 0.25  # pairs (η/2, η) with η ≤ 1/4
    ratio = F[:-1][small] / F[1:][small]
    np.testing.assert_allclose(ratio, 0.5, rtol=0.1)


def test_noise_ball_path_stays_near_the_ball_radius(noise_ball):
    p = noise_ball
    p.controls["eta"].value = 0.5
    path = np.stack([np.asarray(p.figure.data[0].x), np.asarray(p.figure.data[0].y)], axis=1)
    ms = np.mean(np.sum(path[100:] ** 2, axis=1))
    assert ms == pytest.approx(sc.ball_radius(0.5) ** 2, rel=0.35)


def test_robbins_monro_colours_and_slopes(robbins_monro):
    p = robbins_monro
    expected = {0.25: (True, False), 0.5: (True, False), 0.75: (True, True), 1.0: (True, True)}
    for name, power in sc.SCHEDULE_NAMES.items():
        p.controls["schedule"].value = name
        r, clean = p.runs[name]
        grows, grows2 = sc.robbins_monro_verdict(r)
        ok = (grows, not grows2)
        colors = (p.figure.data[0].line.color, p.figure.data[1].line.color)
        assert colors == tuple(sc.GREEN if o else sc.RED for o in ok)
        s = sc.slope(r.F)
        if power == "exp":
            assert ok == (False, True)  # Σ η < ∞ breaks the first condition
            stall = sc.F1 * r.contraction[-1] ** 2
            assert clean[-1] == pytest.approx(stall, rel=1e-3) and stall > 0.5
            assert abs(s) < 0.05
        else:
            assert ok == expected[power]
            assert abs(s + power) <= 0.1  # p = 1: 1/k; p < 1: k^(−p)
    p.controls["schedule"].value = "η₀/(1+k/τ)^p, p = 1"
    r, _ = p.runs["η₀/(1+k/τ)^p, p = 1"]
    k = np.arange(1, r.F.size + 1)
    assert np.all(r.F <= sc.NU / (sc.TAU - 1 + k) * (1 + 1e-6))  # under Theorem 4.7's ν/(γ+k)


def test_nonconvex_seeds_reach_several_minima_at_stationary_points():
    paths, grads, nearest = sc.nonconvex_endpoints()
    assert len(np.unique(nearest)) >= 2
    assert np.all(np.linalg.norm(grads, axis=1) < 1.0)
    surface = ll.surfaces.SURFACES["himmelblau"]
    ends = np.array([float(surface(w)) for w in paths[:, -1]])
    assert np.all(ends < 0.01)
    fig = sc.nonconvex_figure(paths, nearest)
    assert type(fig).__name__ == "FigureWidget"  # a plain go.Figure fails to draw in Voila 0.5
    assert fig.layout.title.text and fig.layout.font.size >= 14

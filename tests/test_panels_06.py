"""Behaviour of notebook 06's panels: what they draw agrees with the library, and the claims hold in them."""

from __future__ import annotations

import numpy as np
import pytest

from lecture_lib import experiments_sgd
from lecture_lib.panels import PANELS
from lecture_lib.panels import empirical_risk as er


@pytest.fixture(scope="module")
def risk_panel():
    return PANELS["empirical_risk"]()


def test_empirical_risk_is_unbiased_in_the_panel_data():
    _, _, risks, expected = er.risk_data()
    for n in er.RISK_SIZES:
        mean = risks[n].mean()
        se = risks[n].std(ddof=1) / np.sqrt(risks[n].size)
        assert abs(mean - expected) <= 4 * se
        if n >= 16:
            assert abs(mean / expected - 1) <= 0.01


def test_the_drawn_sample_gives_the_marked_estimate(risk_panel):
    p = risk_panel
    with p.hold():
        p.controls["n"].value, p.controls["draw"].value = 16, 37
    x, y = np.asarray(p.figure.data[4].x), np.asarray(p.figure.data[4].y)
    assert x.size == 16
    assert np.mean((0.8 * x - y) ** 2) == pytest.approx(p.figure.data[8].x[0], rel=1e-4)
    assert sum(p.figure.data[5].y) == 37  # the histogram holds the first 37 draws


def test_batch_variance_panel_matches_the_predictions():
    losses, with_r, without, lib = er.batch_data()
    var_loss = np.var(losses)
    assert lib.var_replacement[0] == pytest.approx(var_loss, rel=0.05)
    assert abs(float(experiments_sgd.loglog_slope(lib.b, lib.var_replacement)) + 1) <= 0.1
    np.testing.assert_allclose(lib.var_without / lib.pred_without, 1.0, atol=0.1)
    b = np.arange(1, er.B_MAX + 1)
    np.testing.assert_allclose(with_r.var(axis=0) * b / var_loss, 1.0, atol=0.15)
    pred = var_loss / b * (er.POPULATION - b) / (er.POPULATION - 1)
    np.testing.assert_allclose(without.var(axis=0) / pred, 1.0, atol=0.15)


def test_batch_panel_marks_the_chosen_b():
    p = PANELS["batch_error_variance"]()
    with p.hold():
        p.controls["b"].value, p.controls["without"].value = 100.0, True
    assert p.figure.data[7].x[0] == 100
    assert "without" in p.figure.data[1].name


def test_argmin_spread_falls_as_one_over_root_n():
    _, _, fits, sd = er.fit_data()
    assert abs(float(experiments_sgd.loglog_slope(er.FIT_SIZES, sd[1])) + 0.5) <= 0.15
    assert np.all(np.diff(sd[1]) < 0)
    p = PANELS["argmin_spread"]()
    with p.hold():
        p.controls["n"].value, p.controls["degree"].value = 32.0, 3
    assert len(p.figure.data[2].x) == 32
    assert p.figure.data[-1].y[0] == pytest.approx(sd[3][er.FIT_SIZES.index(32)])

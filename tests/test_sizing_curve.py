"""The sizing curve reproduces the published CsPbBr3 size -> PL table."""

import numpy as np
import pytest

from models.optics import fit_sizing_curve, load_sizing_table, sizing_curve

ROWS = load_sizing_table("CsPbBr3")


def test_table_ships_with_the_package_and_has_every_cspbbr3_row():
    assert len(ROWS) == 8
    assert ROWS[0].size_min_nm == 3.5 and ROWS[-1].pl_max_nm == 520


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.size_nm:g}nm")
def test_pl_peak_at_each_published_edge_length_is_within_range_widened_by_2nm(row):
    pl = float(sizing_curve.pl_nm(row.size_nm))
    assert row.pl_min_nm - 2.0 <= pl <= row.pl_max_nm + 2.0


def test_shipped_constants_are_the_least_squares_fit_of_the_table():
    refit = fit_sizing_curve(ROWS)
    assert refit.e_inf_ev == pytest.approx(sizing_curve.e_inf_ev, abs=1e-5)
    assert refit.a_ev_nm2 == pytest.approx(sizing_curve.a_ev_nm2, rel=1e-5)
    assert refit.delta_nm == pytest.approx(sizing_curve.delta_nm, abs=1e-5)


def test_smaller_dots_emit_bluer_and_absorb_above_their_emission():
    edges = np.linspace(2.5, 30.0, 200)
    pl = sizing_curve.pl_nm(edges)
    assert np.all(np.diff(pl) > 0)
    assert np.all(sizing_curve.abs_nm(edges) < pl)  # Stokes shift
    assert 515 < pl[-1] < 525  # bulk-like CsPbBr3


def test_inverse_curves_recover_the_edge_length():
    edges = np.array([3.0, 3.5, 5.0, 8.0, 15.0])
    assert np.allclose(sizing_curve.edge_from_pl_nm(sizing_curve.pl_nm(edges)), edges, atol=1e-6)
    assert np.allclose(sizing_curve.edge_from_abs_nm(sizing_curve.abs_nm(edges)), edges)
    assert np.isnan(sizing_curve.edge_from_abs_nm(600.0))  # below the bulk gap: no size

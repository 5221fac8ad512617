"""Spectral analysis extracts what the physics put into the spectra, also through noise."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.analysis import analyse_spectra, first_exciton_nm, pl_peak_and_fwhm
from models.optics import HC_EV_NM, WAVELENGTHS_NM, sizing_curve
from models.simulation import measure_spectra, render_spectra
from models.synthesis import hot_injection_outcome

WL = WAVELENGTHS_NM


def gaussian_in_energy(center_nm, fwhm_ev, height=1000.0):
    energy = HC_EV_NM / WL
    sigma = fwhm_ev / 2.3548200450309493
    return height * np.exp(-0.5 * ((energy - HC_EV_NM / center_nm) / sigma) ** 2)


@given(center=st.floats(430.0, 560.0), fwhm_ev=st.floats(0.05, 0.2))
@settings(max_examples=60, deadline=None)
def test_pl_peak_and_fwhm_of_a_clean_line_are_exact(center, fwhm_ev):
    peak, fwhm = pl_peak_and_fwhm(WL, gaussian_in_energy(center, fwhm_ev))
    assert peak[0] == pytest.approx(center, abs=0.01)
    energy = HC_EV_NM / center
    expected = HC_EV_NM / (energy - fwhm_ev / 2) - HC_EV_NM / (energy + fwhm_ev / 2)
    assert fwhm[0] == pytest.approx(expected, rel=0.01)


def test_flat_noise_has_no_pl_peak():
    rng = np.random.default_rng(0)
    peak, fwhm = pl_peak_and_fwhm(WL, rng.normal(0.0, 3.0, WL.size))
    assert np.isnan(peak[0]) and np.isnan(fwhm[0])


def test_noisy_pl_peak_is_within_half_a_nanometre_of_the_noiseless_one():
    rng = np.random.default_rng(7)
    n = 300
    conditions = {
        "br_pb_ratio": rng.uniform(2.0, 30.0, n),
        "temperature_c": rng.uniform(135.0, 200.0, n),  # cubes: one PL line
        "ligand": rng.choice(["oa_olam", "olpa", "alkylammonium_br"], n),
        "time_s": rng.uniform(5.0, 600.0, n),
    }
    population = hot_injection_outcome(conditions)
    absorbance, pl = render_spectra(population)
    clean = analyse_spectra(WL, absorbance, pl)
    noisy = analyse_spectra(WL, *measure_spectra(absorbance, pl, rng))
    bright = pl.max(axis=1) > 300.0  # what a spectrometer resolves at this integration
    assert bright.sum() > 0.8 * n
    error = np.abs(noisy["pl_peak_nm"] - clean["pl_peak_nm"])[bright]
    assert np.all(error < 0.5), f"worst {error.max():.3f} nm"


def test_clean_spectra_give_the_population_truth():
    population = hot_injection_outcome(
        {
            "br_pb_ratio": np.array([4.0, 12.0, 25.0]),
            "temperature_c": np.array([190.0, 165.0, 150.0]),
            "ligand": "oa_olam",
            "time_s": 60.0,
        }
    )
    obs = analyse_spectra(WL, *render_spectra(population))
    edge = population["edge_length_nm"]
    assert np.allclose(obs["pl_peak_nm"], sizing_curve.pl_nm(edge), atol=0.05)
    assert np.allclose(obs["abs_peak_nm"], sizing_curve.abs_nm(edge), atol=1.5)
    assert np.allclose(obs["edge_length_est_nm"], edge, rtol=0.01)
    assert np.allclose(obs["plqy_est"], population["plqy"], atol=0.01)


def test_fwhm_narrows_with_more_uniform_dots():
    base = {"edge_length_nm": 3.6, "platelet_fraction": 0.0, "plqy": 0.8, "concentration": 1.0}
    widths = [
        analyse_spectra(WL, *render_spectra({**base, "size_dispersion": d}))["pl_fwhm_nm"][0]
        for d in (0.05, 0.10, 0.15)
    ]
    assert widths[0] < widths[1] < widths[2]
    assert 15.0 < widths[0] < 30.0  # blue CsPbBr3 QDs: ~20-25 nm


def test_no_exciton_is_reported_for_a_transparent_sample():
    assert np.isnan(first_exciton_nm(WL, np.full(WL.size, 1e-4))[0])


def test_analysis_is_vectorised_over_samples():
    population = hot_injection_outcome(
        {
            "br_pb_ratio": np.full(5, 12.0),
            "temperature_c": np.linspace(140, 200, 5),
            "ligand": "oa_olam",
            "time_s": 30.0,
        }
    )
    obs = analyse_spectra(WL, *render_spectra(population))
    assert all(v.shape == (5,) for v in obs.values())


def test_noisy_first_exciton_stays_near_the_noiseless_one_for_concentrated_dots():
    rng = np.random.default_rng(11)
    n = 300
    conditions = {
        "br_pb_ratio": rng.uniform(2.0, 30.0, n),
        "temperature_c": rng.uniform(140.0, 200.0, n),
        "ligand": rng.choice(["oa_olam", "alkylammonium_br"], n),
        "time_s": rng.uniform(60.0, 600.0, n),
    }
    population = hot_injection_outcome(conditions)
    absorbance, pl = render_spectra(population)
    clean = first_exciton_nm(WL, absorbance)
    noisy = first_exciton_nm(WL, measure_spectra(absorbance, pl, rng)[0])
    error = np.abs(noisy - clean)
    assert np.isnan(clean).sum() == 0
    assert np.nanpercentile(error, 95) < 2.0 and np.isnan(noisy).mean() < 0.05

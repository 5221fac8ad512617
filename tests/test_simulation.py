"""The simulate pipeline: validation, batches, user outcome models."""

import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import LIGANDS, ParameterError, get_route, simulate
from models.simulation import OutcomeModelError, load_outcome_model

HOT = {"br_pb_ratio": 12.0, "temperature_c": 140.0, "ligand": "oa_olam", "time_s": 10.0}


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"temperature_c": 250.0}, "temperature_c", "[60, 200] °C"),
        ({"br_pb_ratio": 1.0}, "br_pb_ratio", "[2, 30]"),
        ({"time_s": float("nan")}, "time_s", "[1, 600] s"),
        ({"ligand": "toluene"}, "ligand", "oa_olam"),
        ({"br_pb_ratio": "lots"}, "br_pb_ratio", "must be a number"),
        ({"stir_rpm": 500.0}, "stir_rpm", "allowed: br_pb_ratio"),
    ],
)
def test_bad_conditions_name_the_field_and_the_allowed_range(change, field, text):
    with pytest.raises(ParameterError) as info:
        simulate("hot_injection", {**HOT, **change})
    assert info.value.field == field
    assert field in str(info.value) and text in str(info.value)


def test_missing_condition_is_named_with_its_range():
    with pytest.raises(ParameterError, match=r"time_s is required .* \[1, 600\] s"):
        simulate("hot_injection", {k: v for k, v in HOT.items() if k != "time_s"})


def test_route_names_accept_hyphens_and_unknown_routes_list_the_allowed_ones():
    assert get_route("hot-injection") is get_route("hot_injection")
    with pytest.raises(ParameterError, match="hot-injection, flow, larp"):
        get_route("microwave")


hot_conditions = st.fixed_dictionaries(
    {
        "br_pb_ratio": st.floats(2.0, 30.0),
        "temperature_c": st.floats(60.0, 200.0),
        "ligand": st.sampled_from(sorted(LIGANDS)),
        "time_s": st.floats(1.0, 600.0),
    }
)


@given(conditions=hot_conditions, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=80, deadline=None)
def test_every_in_range_condition_gives_a_physical_population(conditions, seed):
    record = simulate("hot_injection", conditions, np.random.default_rng(seed)).record(0)
    assert 2.0 < record["edge_length_nm"] < 20.0
    assert 0.03 <= record["size_dispersion"] <= 0.5
    assert 0.0 <= record["platelet_fraction"] <= 1.0
    assert 0.0 <= record["plqy"] <= 1.0
    assert record["concentration"] >= 0.0
    if not np.isnan(record["pl_peak_nm"]):
        assert 395.0 < record["pl_peak_nm"] < 530.0


def test_a_batch_equals_the_same_conditions_one_by_one_without_noise():
    rows = [{**HOT, "temperature_c": t} for t in (120.0, 150.0, 180.0)]
    batch = simulate("hot_injection", rows)
    for i, row in enumerate(rows):
        single = simulate("hot_injection", row)
        assert single.record(0) == pytest.approx(batch.record(i), nan_ok=True)


def test_same_seed_same_measurement():
    a = simulate("hot_injection", HOT, np.random.default_rng(3))
    b = simulate("hot_injection", HOT, np.random.default_rng(3))
    assert np.array_equal(a.pl, b.pl) and a.record(0) == b.record(0)


@pytest.fixture
def user_model_module(tmp_path, monkeypatch):
    (tmp_path / "my_chemistry.py").write_text(
        textwrap.dedent(
            """
            def fapbbr3_like(conditions, rng):
                size = 4.0 + 0.05 * conditions["temperature_c"] / 10.0
                return {"edge_length_nm": size, "size_dispersion": 0.09,
                        "platelet_fraction": 0.0, "plqy": 0.6, "concentration": 0.5}

            def broken(conditions, rng):
                return {"edge_length_nm": 4.0}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_chemistry"
    sys.modules.pop("my_chemistry", None)


def test_a_user_outcome_model_named_by_path_replaces_the_builtin(user_model_module):
    batch = simulate("hot_injection", HOT, outcome_model=f"{user_model_module}:fapbbr3_like")
    assert batch.population["edge_length_nm"][0] == pytest.approx(4.7)
    assert batch.observables["edge_length_est_nm"][0] == pytest.approx(4.7, abs=0.01)


def test_a_user_model_missing_population_keys_is_refused(user_model_module):
    with pytest.raises(OutcomeModelError, match=r"lacks .*size_dispersion"):
        simulate("hot_injection", HOT, outcome_model=f"{user_model_module}:broken")


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("no_colon_here", "package.module:function"),
        ("surely_not_a_module_xyz:f", "cannot import"),
        ("models.synthesis:no_such_function", "has no function"),
        ("os:system", "os is Python's own library, not an outcome model"),
        ("models.synthesis:POPULATION_KEYS", "has no function"),
        ("models.synthesis:LigandChemistry", "is not a Python function"),
        ("models.synthesis:_logit", "not \\(conditions, rng\\)"),
    ],
)
def test_outcome_model_paths_that_do_not_load_are_explained(path, text):
    with pytest.raises(OutcomeModelError, match=text):
        load_outcome_model(path)

"""``qdlab simulate`` as a user runs it."""

import json

import pytest


def test_simulate_prints_population_and_observables(run_qdlab):
    out = run_qdlab(
        "simulate",
        "--route",
        "hot-injection",
        "--br-pb",
        "12",
        "--temperature",
        "140",
        "--ligand",
        "oa_olam",
        "--time",
        "10",
    )
    assert out.returncode == 0, out.stderr
    for key in (
        "edge_length_nm",
        "size_dispersion",
        "platelet_fraction",
        "plqy",
        "pl_peak_nm",
        "pl_fwhm_nm",
        "abs_peak_nm",
    ):
        assert key in out.stdout


def test_simulate_json_is_one_object_with_the_observables(run_qdlab):
    out = run_qdlab(
        "simulate",
        "--br-pb",
        "20",
        "--temperature",
        "180",
        "--ligand",
        "olpa",
        "--time",
        "300",
        "--seed",
        "4",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["route"] == "hot_injection" and record["seed"] == 4
    assert record["ligand"] == "olpa" and record["br_pb_ratio"] == 20.0
    assert 440.0 < record["pl_peak_nm"] < 525.0
    assert record["abs_peak_nm"] is None or record["abs_peak_nm"] < record["pl_peak_nm"]


def test_flow_and_larp_routes_run_with_their_own_flags(run_qdlab):
    flow = run_qdlab(
        "simulate", "--route", "flow", "--residence-time", "5", "--flow-ratio", "2", "--json"
    )
    larp = run_qdlab("simulate", "--route", "larp", "--precursor-ul", "40", "--json")
    assert flow.returncode == 0 and larp.returncode == 0, flow.stderr + larp.stderr
    assert json.loads(flow.stdout)["flow_ratio"] == 2.0
    assert json.loads(larp.stdout)["precursor_ul"] == 40.0


def test_help_lists_routes_parameters_ranges_and_ligands(run_qdlab):
    out = run_qdlab("simulate", "--help", env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0
    for text in (
        "hot-injection",
        "flow",
        "larp",
        "[60, 200] °C",
        "[2, 30]",
        "--residence-time",
        "oa_olam_acid_rich",
        "alkylammonium_br",
        "olpa",
        "[0.25, 4]",
    ):
        assert text in out.stdout, text


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--br-pb", "45"], "--br-pb: br_pb_ratio = 45 is outside the allowed range [2, 30]"),
        (["--temperature", "20"], "[60, 200] °C"),
        (["--ligand", "water"], "ligand = 'water' is not one of {oa_olam"),
        (["--route", "microwave"], "route 'microwave' is not one of {hot-injection, flow, larp}"),
        (["--flow-ratio", "2"], "--flow-ratio does not apply to route hot-injection"),
        (["--br-pb", "many"], "'--br-pb'"),
        (["--route", "larp", "--ligand-ul", "80"], "ligand_ul = 80 is outside"),
        (["--material", "CsSnI3"], "material = 'CsSnI3' is not one of {CsPbBr3, CsPbI3, FAPbBr3}"),
        (["--route", "flow", "--material", "CsPbI3"], "--material does not apply to route flow"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_parameter(run_qdlab, args, text):
    out = run_qdlab("simulate", *args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert text in lines[0]


def test_simulate_makes_red_cspbi3_and_green_fapbbr3(run_qdlab):
    red = run_qdlab("simulate", "--material", "CsPbI3", "--temperature", "165", "--br-pb", "2",
                    "--time", "60", "--json")  # fmt: skip
    assert red.returncode == 0, red.stderr
    record = json.loads(red.stdout)
    assert record["material"] == "CsPbI3" and 640 < record["pl_peak_nm"] < 670
    assert abs(record["edge_length_est_nm"] - record["edge_length_nm"]) < 0.2
    green = run_qdlab("simulate", "--material", "FAPbBr3", "--temperature", "185", "--br-pb",
                      "2", "--time", "60", "--json")  # fmt: skip
    assert 520 < json.loads(green.stdout)["pl_peak_nm"] < 540

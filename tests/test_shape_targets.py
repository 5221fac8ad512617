"""What counts as a hit: the shape a target asks for (cubes by default, platelets, or any)."""

import logging

import numpy as np
import pytest
from scipy.stats import qmc

from db import Database
from devices.config import ConfigError
from models import simulate
from models.analysis import platelet_like
from orchestrator.campaign.config import parse_campaign
from orchestrator.campaign.runner import CampaignRunner, summarize
from tests.conftest import ROOT
from tests.test_campaign import BASE, write_config

# cold, bromide-rich and acid-rich: only nanoplatelets form here (3 and 4 monolayers)
PLATELET_SPACE = {
    "br_pb_ratio": [20, 30],
    "temperature_c": [90, 110],
    "ligand": ["oa_olam_acid_rich"],
    "time_s": [30, 120],
}


def campaign(**changes):
    return parse_campaign({**BASE, **changes}, "", ROOT)


@pytest.mark.parametrize(
    ("material", "coldest_c"), [("CsPbBr3", 90), ("CsPbI3", 100), ("FAPbBr3", 60)]
)
def test_the_measured_spectra_tell_platelets_from_cubes_for_every_material(material, coldest_c):
    """Against the twin's hidden truth, over its whole hot-injection space: few platelet-rich
    samples pass as cubes, few cube samples as platelets."""
    u = qmc.Sobol(4, seed=3).random(2048)
    ligands = ["oa_olam", "oa_olam_acid_rich", "olpa", "alkylammonium_br"]
    rows = [
        {
            "br_pb_ratio": 2 + 28 * a,
            "temperature_c": coldest_c + (200 - coldest_c) * b,
            "ligand": ligands[int(c * 4)],
            "time_s": 1 + 119 * d,
            "material": material,
        }
        for a, b, c, d in u
    ]
    batch = simulate("hot_injection", rows, rng=np.random.default_rng(4))
    obs = batch.observables
    measured = np.isfinite(obs["pl_peak_nm"])
    said = platelet_like(obs["pl_peak_nm"], obs["pl_fwhm_nm"], obs["abs_peak_nm"], material)
    truth = batch.population["platelet_fraction"] >= 0.5
    said, truth = said[measured], truth[measured]
    assert truth.sum() > 50, "the space should hold platelet-rich samples"
    assert (~said & truth).sum() <= 0.05 * truth.sum()
    assert (said & ~truth).sum() <= 0.05 * (~truth).sum()


def test_a_platelet_sample_never_hits_a_cube_target():
    """A campaign among platelets reaches a PL line only when the target accepts platelets; the
    same measurements judged against a cube target are no hit, however close the line."""
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    db = Database("sqlite://")
    loaded = campaign(
        space=PLATELET_SPACE,
        target={"pl_peak_nm": 471.0, "tolerance_nm": 1.0, "shape": "any"},
        budget=6,
        stop_on_target=False,
    )
    summary = CampaignRunner(db, loaded).run()
    assert summary.reached_target
    rows = [r for r in db.experiments(summary.campaign_id) if r.status == "done"]
    near = [r for r in rows if loaded.target.error(r.observables) <= 1.0]
    assert near, "some experiments measured the 4-monolayer line"
    cubes = campaign(target={"pl_peak_nm": 471.0, "tolerance_nm": 1.0})
    assert cubes.target.shape == "cubes"  # the default
    assert not any(cubes.target.hit(r.observables, r.conditions) for r in near)
    assert not summarize(db, summary.campaign_id, cubes).reached_target


def test_a_cube_target_where_only_platelets_form_is_refused_before_anything_runs():
    with pytest.raises(ConfigError, match=r"no condition in this space gives cubes"):
        campaign(space=PLATELET_SPACE, target={"pl_peak_nm": 471.0})


def test_a_layers_target_aims_at_the_materials_platelet_line(run_qdlab, tmp_path):
    config = write_config(
        tmp_path,
        space=PLATELET_SPACE,
        target={"shape": "platelets", "layers": 4, "tolerance_nm": 1.0},
        budget=6,
    )
    url = f"sqlite:///{tmp_path / 'c.db'}"
    out = run_qdlab("campaign", "run", config, "--db", url)
    assert out.returncode == 0, out.stderr
    assert "target reached at experiment" in out.stdout
    assert "(PL 471 ± 1 nm platelets (4 monolayers))" in out.stdout
    best = out.stdout.split("best: ")[1]
    assert abs(float(best.split("PL ")[1].split(" nm")[0]) - 471.0) <= 1.0


@pytest.mark.parametrize(
    ("target", "space", "message"),
    [
        ({"layers": 3}, {}, "layers is a platelet target"),
        ({"shape": "platelets", "edge_length_nm": 3.0}, {}, "not edge_length_nm"),
        ({"shape": "platelets", "layers": 3, "pl_peak_nm": 456}, {}, "exactly one of"),
        (
            {"shape": "platelets", "layers": 3},
            {"material": ["CsPbBr3", "FAPbBr3"]},
            r"target.layers: the 3-monolayer line differs by material",
        ),
        ({"pl_peak_nm": 470, "shape": "spheres"}, {}, "target.shape"),
    ],
)
def test_bad_shape_targets_name_the_field(target, space, message):
    with pytest.raises(ConfigError, match=message):
        campaign(target=target, space={**BASE["space"], **space})

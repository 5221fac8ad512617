"""Planner contracts (ask / tell / pending / restore) and the BoTorch planner's behaviour."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from db import Database
from models import simulate
from orchestrator.campaign.config import parse_campaign
from orchestrator.campaign.runner import CampaignRunner
from planners import Observation, PlannerConfigError, SearchSpace, Target, make_planner

ROOT = Path(__file__).resolve().parents[1]
SPACE = SearchSpace.from_config(
    {
        "br_pb_ratio": [2, 30],
        "temperature_c": [90, 200],
        "ligand": ["oa_olam", "oa_olam_acid_rich", "olpa", "alkylammonium_br"],
        "time_s": [1, 120],
    }
)
TARGET = Target("pl_peak_nm", 475.0, 1.0)
RED_CUBES = [  # cubes well to the red of TARGET: measured, none is a hit (a hit is replicated)
    {"br_pb_ratio": r, "temperature_c": t, "ligand": "oa_olam", "time_s": 60.0}
    for r, t in ((4.0, 190.0), (6.0, 185.0), (3.0, 195.0))
]
KINDS = ["random", "sobol", "botorch"]


def measure(conditions, seed):
    obs = simulate("hot_injection", conditions, np.random.default_rng(seed)).observables
    return {k: float(v[0]) for k, v in obs.items()}


def observe(planner, proposals, seed=0):
    obs = [
        Observation(p.conditions, measure(p.conditions, seed + i)) for i, p in enumerate(proposals)
    ]
    planner.tell(obs)
    return obs


def inside(conditions):
    return all(
        SPACE.continuous[n][0] <= conditions[n] <= SPACE.continuous[n][1]
        if n in SPACE.continuous
        else conditions[n] in SPACE.categorical[n]
        for n in SPACE.order
    )


@pytest.mark.parametrize("kind", KINDS)
def test_ask_returns_proposals_inside_the_space_with_provenance(kind):
    planner = make_planner(kind, SPACE, TARGET, seed=3, route="hot_injection")
    proposals = planner.ask(3)
    assert len(proposals) == 3 and all(inside(p.conditions) for p in proposals)
    assert all(p.planner_name == kind and p.seed == 3 and p.planner_version for p in proposals)
    assert len(planner.pending) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_tell_clears_pending_and_pending_points_are_never_proposed_again(kind):
    planner = make_planner(kind, SPACE, TARGET, seed=1, route="hot_injection")
    observe(planner, planner.ask(2))  # past the initial design
    first = planner.ask(3)
    second = planner.ask(3)
    keys = [SPACE.key(p.conditions) for p in first + second]
    assert len(set(keys)) == 6
    observe(planner, first)
    assert {SPACE.key(c) for c in planner.pending} == {SPACE.key(p.conditions) for p in second}


@pytest.mark.parametrize("kind", KINDS)
def test_a_restored_planner_proposes_what_the_uninterrupted_one_would(kind):
    original = make_planner(kind, SPACE, TARGET, seed=5, route="hot_injection")
    batches, observations, provenance = [], [], []
    for step in range(4):
        batch = original.ask(1 if step % 2 else 2)
        batches.append([p.conditions for p in batch])
        provenance += [p.provenance for p in batch]
        observations += observe(original, batch, seed=step * 10)
    restored = make_planner(kind, SPACE, TARGET, seed=5, route="hot_injection")
    restored.restore(
        json.loads(json.dumps(batches)), observations, json.loads(json.dumps(provenance))
    )  # as stored in the database
    nxt_a, nxt_b = original.ask(2), restored.ask(2)
    for a, b in zip(nxt_a, nxt_b, strict=True):
        assert SPACE.key(a.conditions) == SPACE.key(b.conditions)
        # the same uncertainty too: a calibrated one learns from the same past predictions
        # (to the GP fit's own tolerance: the twin's predictions, simulated in other batches,
        # may differ in the last bit)
        assert (a.predicted_std is None) == (b.predicted_std is None)
        if a.predicted_std is not None:
            assert a.predicted_std == pytest.approx(b.predicted_std, rel=1e-3)


def test_botorch_proposes_the_ligand_that_can_reach_the_target():
    # at 90-110 °C only the phosphonic-acid route gives ~9 nm cubes (~512 nm); the others give
    # nanoplatelets far bluer
    space = SearchSpace.from_config(
        {
            "br_pb_ratio": [2, 3],
            "temperature_c": [90, 110],
            "ligand": ["oa_olam", "olpa"],
            "time_s": [300, 600],
        }
    )
    planner = make_planner(
        "botorch", space, Target("pl_peak_nm", 512.0, 1.0), seed=0, route="hot_injection"
    )
    for _ in range(2):
        observe(planner, planner.ask(1))
    model_picks = [p.conditions["ligand"] for p in planner.ask(3)]
    assert model_picks == ["olpa"] * 3


def test_botorch_avoids_a_region_after_experiments_there_failed():
    planner = make_planner(
        "botorch",
        SPACE,
        TARGET,
        seed=2,
        route="hot_injection",
        options={"physics_prior": False, "initial_points": 0},
    )
    rng = np.random.default_rng(0)
    good = [
        {
            "br_pb_ratio": rng.uniform(2, 30),
            "temperature_c": rng.uniform(120, 200),
            "ligand": lig,
            "time_s": rng.uniform(1, 120),
        }
        for lig in ("oa_olam", "olpa", "alkylammonium_br")
        for _ in range(4)
    ]
    bad = [
        {
            "br_pb_ratio": rng.uniform(2, 30),
            "temperature_c": rng.uniform(90, 200),
            "ligand": "oa_olam_acid_rich",
            "time_s": rng.uniform(1, 120),
        }
        for _ in range(6)
    ]
    planner.tell([Observation(c, measure(c, i)) for i, c in enumerate(good)])
    planner.tell([Observation(c, failed=True, reason="pump stall") for c in bad])
    picks = planner.ask(4)
    assert all(p.conditions["ligand"] != "oa_olam_acid_rich" for p in picks)
    assert all(p.provenance["p_feasible"] > 0.3 for p in picks)


def test_botorch_proposals_carry_predictions_and_acquisition_values():
    planner = make_planner("botorch", SPACE, TARGET, seed=0, route="hot_injection")
    observe(planner, planner.ask(2))
    # (the one other stage after two measurements: the replicate of a first hit)
    proposal = next(p for p in planner.ask(2) if p.provenance["stage"] != "replicate")
    assert proposal.provenance["stage"] == "model"
    assert abs(proposal.predicted_mean - 475.0) < 3.0 and proposal.predicted_std > 0
    assert proposal.acquisition_value > 0 and "hyperparameters" in proposal.provenance


def test_unknown_planner_options_are_named():
    with pytest.raises(PlannerConfigError, match=r"planner\.exploration: not an option"):
        make_planner("botorch", SPACE, TARGET, options={"exploration": 2})
    with pytest.raises(PlannerConfigError, match=r"planner\.kind 'genetic'"):
        make_planner("genetic", SPACE, TARGET)


def test_an_ask_keeps_to_its_thread_count_and_puts_the_process_setting_back():
    import torch
    from threadpoolctl import threadpool_info

    with pytest.raises(PlannerConfigError, match=r"planner\.threads: .*greater than or equal to 1"):
        make_planner("botorch", SPACE, TARGET, options={"threads": 0})
    planner = make_planner("botorch", SPACE, TARGET, 0, options={}, route="hot_injection")
    observe(planner, [planner._proposal(c) for c in RED_CUBES])
    fit = planner._model_proposals
    seen = []

    def counting(*args, **kwargs):
        seen.append((torch.get_num_threads(), [p["num_threads"] for p in threadpool_info()]))
        return fit(*args, **kwargs)

    planner._model_proposals = counting
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        planner.ask(1)
        assert torch.get_num_threads() == 2  # the process's own setting, back
    finally:
        torch.set_num_threads(before)
    (torch_threads, pools) = seen[0]
    assert torch_threads == 1 and set(pools) == {1}  # the default: one thread each


def _campaign(planner: dict, target: float, budget: int, seed: int = 0, **extra):
    return parse_campaign(
        {
            **extra,
            "name": "bo-test",
            "lab": str(ROOT / "configs" / "labs" / "sim.yaml"),
            "route": "hot_injection",
            "target": {"pl_peak_nm": target, "tolerance_nm": 1.0},
            "space": {
                n: list(SPACE.continuous.get(n, SPACE.categorical.get(n))) for n in SPACE.order
            },
            "planner": planner,
            "budget": budget,
            "seed": seed,
        },
        "",
        ROOT,
    )


@pytest.mark.slow
def test_a_botorch_campaign_on_the_simulated_lab_reaches_475_nm_within_budget():
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    db = Database("sqlite://")
    summary = CampaignRunner(db, _campaign({"kind": "botorch"}, 475.0, 15, seed=0)).run()
    assert summary.reached_target and summary.first_hit_experiment <= 15
    rows = db.experiments(summary.campaign_id)
    assert rows[-1].planner_name == "botorch" and rows[-1].predicted_mean is not None


@pytest.mark.slow
def test_a_botorch_campaign_resumes_from_the_database(tmp_path):
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    db = Database(f"sqlite:///{tmp_path / 'bo.db'}")
    loaded = _campaign({"kind": "botorch"}, 505.0, 4, seed=1, stop_on_target=False)
    first = CampaignRunner(db, loaded).run()
    assert first.experiments == 4
    longer = loaded.config.model_copy(update={"budget": 8})
    runner = CampaignRunner(
        db,
        loaded.__class__(longer, loaded.lab, "", loaded.space, loaded.target),
        campaign_id=first.campaign_id,
    )
    summary = runner.run()
    assert summary.experiments == 8
    assert [r.index for r in db.experiments(first.campaign_id)] == list(range(8))


def test_suggest_prints_conditions_near_the_target(run_qdlab, tmp_path):
    missing = run_qdlab(
        "suggest", "--target-nm", "480", "--db", f"sqlite:///{tmp_path / 's.db'}", "--top", "3"
    )
    assert missing.returncode == 2 and "no database at" in missing.stderr
    Database(f"sqlite:///{tmp_path / 's.db'}")  # an empty one: the physics alone
    out = run_qdlab(
        "suggest",
        "--route",
        "hot-injection",
        "--target-nm",
        "480",
        "--db",
        f"sqlite:///{tmp_path / 's.db'}",
        "--json",
        "--top",
        "3",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["observations"] == 0 and len(result["suggestions"]) == 3
    for s in result["suggestions"]:
        assert abs(s["predicted"] - 480) < 1.0 and s["predicted_std"] > 0
        truth = simulate("hot_injection", s["conditions"]).observables["pl_peak_nm"][0]
        assert abs(truth - 480) < 1.0  # the physics prior alone is already right here
    bad = run_qdlab("suggest", "--target-nm", "900")
    assert bad.returncode == 2 and "[380, 700] nm" in bad.stderr


@pytest.mark.parametrize(
    ("goal", "observable", "better"),
    [
        ({"minimize": ("pl_fwhm_nm",)}, "pl_fwhm_nm", np.less),
        ({"maximize": ("plqy_est",)}, "plqy_est", np.greater),
    ],
    ids=["narrow", "bright"],
)
def test_secondary_goals_steer_towards_narrow_or_bright_hits(goal, observable, better):
    picks: dict[str, list[float]] = {"plain": [], "steered": []}
    for seed in (0, 1, 2):  # on average over seeds: one seed's plain picks may be lucky
        plain = make_planner("botorch", SPACE, TARGET, seed=seed, route="hot_injection")
        steered = make_planner(
            "botorch",
            SPACE,
            Target("pl_peak_nm", 475.0, 1.0, **goal),
            seed=seed,
            route="hot_injection",
            options={"secondary_weight": 3.0},
        )
        for planner in (plain, steered):
            observe(planner, planner.ask(4), seed=11)
        for name, planner in (("plain", plain), ("steered", steered)):
            values = [
                simulate("hot_injection", p.conditions).observables[observable][0]
                for p in planner.ask(4)
            ]
            picks[name].append(np.nanmean(values))
    assert better(np.mean(picks["steered"]), np.mean(picks["plain"]))


def test_secondary_goals_wait_for_the_target_s_gp():
    """A narrow-and-bright target proposes with any number of measurements: with fewer than
    three, the twin's window decides alone (the FWHM and PLQY GPs would have no target GP to
    pair with); from three on, the target's GP with the secondary goals'."""
    target = Target("pl_peak_nm", 475.0, 1.0, ("pl_fwhm_nm",), ("plqy_est",))
    for n in range(4):
        planner = make_planner("botorch", SPACE, target, seed=0, route="hot_injection")
        told = [Observation(c, measure(c, seed=i)) for i, c in enumerate(RED_CUBES[:n])]
        planner.tell(told)
        assert all(target.shape_ok(o.observables, o.conditions) for o in told)
        assert not any(target.hit(o.observables, o.conditions) for o in told)
        (proposal,) = planner.ask(1)
        assert inside(proposal.conditions)
        assert proposal.provenance["acquisition"] == ("window" if n == 3 else "twin"), n


@pytest.mark.parametrize("n", [0, 1, 2])
def test_before_the_gp_predict_says_what_the_proposal_said(n):
    """``predict`` (what ``qdlab suggest`` shows) gives a proposal's own mean and std while
    the recalibrated twin, with its distance-aware std, decides alone."""
    planner = make_planner("botorch", SPACE, TARGET, seed=0, route="hot_injection")
    planner.tell([Observation(c, measure(c, seed=i)) for i, c in enumerate(RED_CUBES[:n])])
    (proposal,) = planner.ask(1)
    predicted = planner.predict([proposal.conditions])
    assert predicted["target_mean"][0] == pytest.approx(proposal.predicted_mean, abs=1e-6)
    assert predicted["target_std"][0] == pytest.approx(proposal.predicted_std, rel=1e-6)


def test_warm_start_seeds_the_model_with_earlier_campaigns(tmp_path):
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    earlier = CampaignRunner(db, _campaign({"kind": "random"}, 490.0, 6, seed=3))
    earlier.run()
    runner = CampaignRunner(
        db,
        _campaign({"kind": "botorch", "warm_start": True, "initial_points": 0}, 490.0, 1, seed=3),
    )
    runner.run()
    (row,) = db.experiments(runner.campaign_id)
    assert row.provenance["warm_start"] >= 5  # the earlier campaign's observations
    # the model learns from each of them that gave cubes (the shape asked for) a PL line
    cubes = [
        r
        for r in db.experiments(earlier.campaign_id)
        if r.observables.get("pl_peak_nm") is not None
        and TARGET.shape_ok(r.observables, r.conditions)
    ]
    assert row.provenance["observations"] == len(cubes) >= 3


def test_warm_start_takes_only_the_material_the_campaign_makes(tmp_path):
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    red_space = {
        **{n: list(SPACE.continuous.get(n, SPACE.categorical.get(n))) for n in SPACE.order},
        "material": ["CsPbI3"],
        "temperature_c": [140, 200],
    }
    red = parse_campaign(
        {"name": "red", "lab": str(ROOT / "configs" / "labs" / "sim.yaml"),
         "route": "hot_injection", "target": {"pl_peak_nm": 650.0, "tolerance_nm": 1.0},
         "space": red_space, "planner": {"kind": "random"}, "budget": 4, "seed": 1,
         "stop_on_target": False},
        "", ROOT,
    )  # fmt: skip
    CampaignRunner(db, red).run()
    CampaignRunner(db, _campaign({"kind": "random"}, 490.0, 3, seed=3, stop_on_target=False)).run()
    runner = CampaignRunner(
        db,
        _campaign({"kind": "botorch", "warm_start": True, "initial_points": 0}, 490.0, 1, seed=3),
    )
    runner.run()
    (row,) = db.experiments(runner.campaign_id)
    # the blue campaign's three, not the red one's four: CsPbI3 says nothing about CsPbBr3
    assert row.provenance["warm_start"] == 3


def test_suggest_looks_across_materials_unless_told_one_and_says_which_and_why(run_qdlab):
    red = json.loads(run_qdlab("suggest", "--target-nm", "650", "--top", "3", "--json").stdout)
    for s in red["suggestions"]:
        assert s["conditions"]["material"] == "CsPbI3"  # only CsPbI3 emits at 650 nm
        truth = simulate("hot_injection", s["conditions"]).observables["pl_peak_nm"][0]
        assert abs(truth - 650) < 1.5
    chosen, *others = red["materials"]
    assert chosen["material"] == "CsPbI3" and chosen["why"].startswith("chosen: predicted at")
    assert {m["material"] for m in others} == {"CsPbBr3", "FAPbBr3"}
    assert all("comes no closer than" in m["why"] for m in others)  # bromides stop short
    out = run_qdlab("suggest", "--target-nm", "500", "--material", "FAPbBr3", "--json")
    assert {s["conditions"]["material"] for s in json.loads(out.stdout)["suggestions"]} == {
        "FAPbBr3"
    }


def test_suggest_takes_a_campaign_s_space_target_and_materials(run_qdlab, tmp_path):
    config = tmp_path / "c.yaml"
    space = {"material": ["CsPbBr3", "FAPbBr3"], "br_pb_ratio": [3, 12],
             "temperature_c": [140, 180], "ligand": ["oa_olam"], "time_s": [5, 60]}  # fmt: skip
    config.write_text(json.dumps({
        "name": "green", "lab": str(ROOT / "configs" / "labs" / "sim.yaml"),
        "route": "hot_injection", "target": {"pl_peak_nm": 505.0, "tolerance_nm": 2.0},
        "space": space, "planner": {"kind": "botorch"},
    }))  # fmt: skip
    out = run_qdlab("suggest", "--campaign", str(config), "--json", "--top", "4")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["target"] == {"observable": "pl_peak_nm", "value": 505.0, "tolerance": 2.0,
                                "shape": "cubes"}  # fmt: skip
    assert sorted(m["material"] for m in result["materials"]) == space["material"]
    assert result["materials"][0]["why"].startswith("chosen: predicted at")
    for s in result["suggestions"]:
        c = s["conditions"]
        assert c["ligand"] == "oa_olam" and 140 <= c["temperature_c"] <= 180  # its space only
        assert 3 <= c["br_pb_ratio"] <= 12 and 5 <= c["time_s"] <= 60
        assert abs(s["predicted"] - 505.0) < 2.0
    printed = run_qdlab("suggest", "--campaign", str(config), "--target-nm", "500")
    assert printed.returncode == 0 and "closest to 500" in printed.stdout
    assert "chosen: predicted at" in printed.stdout
    both = run_qdlab("suggest", "--campaign", str(config), "--route", "flow")
    assert both.returncode == 2 and "--route: not with --campaign" in both.stderr
    neither = run_qdlab("suggest")
    assert neither.returncode == 2 and "--target-nm: give it, or --campaign FILE" in neither.stderr
    other = run_qdlab("suggest", "--campaign", str(config), "--material", "CsPbI3")
    assert other.returncode == 2 and "the campaign makes CsPbBr3, FAPbBr3" in other.stderr

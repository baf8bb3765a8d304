"""Each claim's verdict follows from its numbers and its rule: every rule against hand-computed cases, the committed
claims recomputed from the committed summaries, and a changed number in a copy of them changing the verdict."""
import json
import math
import shutil

import pytest

from evaluation import claims
from evaluation.claims import (LARGER, NO_EFFECT, NOT_REPRODUCED, NOT_RUN, REPRODUCED, SAME_DIRECTION, SMALLER,
                               Measured, assess, load_claims, measure_ours, verdict)
from evaluation.result_rows import find_rows, load_summaries, parse_number
from tests.scripts import REPO


@pytest.mark.parametrize("rule,ours,paper,expected", [
    # match: within max(2 sigma, tolerance) of the paper's value
    ({"kind": "match"}, Measured(94.3, 0.1), Measured(94.5, 0.1), REPRODUCED),
    ({"kind": "match"}, Measured(93.6, 0.19), Measured(94.5, 0.3), NOT_REPRODUCED),
    ({"kind": "match", "tolerance": 1.0}, Measured(93.6), Measured(94.5), REPRODUCED),
    ({"kind": "match", "scale": "log10", "tolerance": 0.5}, Measured(4284), Measured(4600), REPRODUCED),
    ({"kind": "match", "scale": "log10", "tolerance": 0.5}, Measured(4.6e4), Measured(4600), NOT_REPRODUCED),
    # effect: a signed gap or a ratio in decades
    ({"kind": "effect"}, Measured(3.6, 0.2), Measured(3.8, 0.3), REPRODUCED),
    ({"kind": "effect"}, Measured(0.35, 0.24), Measured(3.8, 0.32), NO_EFFECT),
    ({"kind": "effect"}, Measured(1.5, 0.1), Measured(3.8, 0.32), SMALLER),
    ({"kind": "effect"}, Measured(9.0, 0.1), Measured(3.8, 0.32), LARGER),
    ({"kind": "effect"}, Measured(-2.0, 0.1), Measured(3.8, 0.32), NOT_REPRODUCED),
    ({"kind": "effect", "tolerance": 1.0}, Measured(18.0), Measured(31.4), SMALLER),
    ({"kind": "effect", "tolerance": 1.0}, Measured(5.14), Measured(5.03), REPRODUCED),
    ({"kind": "effect", "scale": "log10", "tolerance": 1.0}, Measured(6.4e6), Measured(2.6e4), LARGER),
    ({"kind": "effect", "scale": "log10", "tolerance": 1.0}, Measured(40.0), Measured(2.6e4), SMALLER),
    ({"kind": "effect", "scale": "log10", "tolerance": 1.0}, Measured(3.0), Measured(2.6e4), NO_EFFECT),
    ({"kind": "effect", "scale": "log10", "tolerance": 1.0}, Measured(1e-3), Measured(2.6e4), NOT_REPRODUCED),
    # direction: the paper gives the sign only
    ({"kind": "direction", "sign": 1, "tolerance": 0.1}, Measured(2.06), None, SAME_DIRECTION),
    ({"kind": "direction", "sign": 1, "tolerance": 0.1}, Measured(0.05), None, NO_EFFECT),
    ({"kind": "direction", "sign": 1}, Measured(0.3, 0.2), None, NO_EFFECT),
    ({"kind": "direction", "sign": 1, "tolerance": 0.1}, Measured(-0.5), None, NOT_REPRODUCED),
    ({"kind": "direction", "sign": -1, "tolerance": 0.1}, Measured(-0.5), None, SAME_DIRECTION),
    # all and decreasing
    ({"kind": "all"}, Measured((4, 4)), None, "reproduced (4 of 4)"),
    ({"kind": "all"}, Measured((2, 4)), None, "partly reproduced (2 of 4)"),
    ({"kind": "all"}, Measured((0, 4)), None, NOT_REPRODUCED),
    ({"kind": "decreasing"}, Measured([20.6, 9.5, 4.4]), None, "reproduced (decreasing)"),
    ({"kind": "decreasing"}, Measured([20.6, 9.5, 9.9]), None, NOT_REPRODUCED),
    ({"kind": "match"}, None, Measured(1.0), NOT_RUN),
])
def test_each_rule_decides_from_the_numbers(rule, ours, paper, expected):
    assert verdict(rule, ours, paper) == expected


def test_measures_combine_the_rows_and_their_noise():
    assert claims.combine("difference", [(93.92, 0.15), (93.57, 0.19)], {}).noise == pytest.approx(math.hypot(.15, .19))
    ratio = claims.combine("ratio", [(8.0, 0.8), (2.0, 0.0)], {})
    assert ratio.value == 4.0 and ratio.noise == pytest.approx(0.4)
    assert parse_number("93.92 ± 0.15", "x") == (93.92, 0.15)
    assert parse_number("0.42 ± 0.03 (3 seeds)", "x") == (0.42, 0.03)
    assert parse_number("~4.6e3 (step 30000, B2)", "x") == (4600.0, 0.0)
    with pytest.raises(ValueError, match="does not open with a number"):
        parse_number("official code ~59", "claim x")


@pytest.fixture
def committed(tmp_path):
    """A copy of the committed results/ whose numbers a test may change."""
    return shutil.copytree(REPO / "results", tmp_path / "results", ignore=shutil.ignore_patterns("figures"))


def verdict_of(results, claim_id):
    data = load_claims(results)
    claim = next(claim for claim in data["claims"] if claim["id"] == claim_id)
    return assess(claim, load_summaries(results), data["reproduce"])[1]


def set_ours(results, name, method, dataset, metric, value):
    path = results / f"{name}.json"
    summary = json.loads(path.read_text())
    row, = [row for row in summary["rows"] if (row["method"], row["dataset"], row["metric"]) == (method, dataset,
                                                                                             metric)]
    row["ours"] = value
    path.write_text(json.dumps(summary))


@pytest.mark.parametrize("claim_id,change,before,after", [
    # a larger quick VAE-CyGen(PT) gap turns "no effect" into the paper's 3.8 within noise
    ("table7-mnist-gap", ("image_quick", "VAE", "mnist", "downstream accuracy (%)", "93.9 ± 0.19"),
     "no effect beyond noise (quick)", "reproduced within noise (quick)"),
    # the ablation's compatibility at full length 1e4 above CyGen(PT)'s instead of 6e6: the paper's 2.6e4
    ("toy-pinwheel-ablation", ("toy_full", "CyGen(PT), w_cm=0", "pinwheel", "compatibility, lite (J-weighted)", 4.3e7),
     "same direction, larger effect (full)", "reproduced within noise (full)"),
    # a full-scale CVAE no better than the NN with one quadrant
    ("cvae-gap-q1", ("cvae_full", "gap NN - CVAE (Monte Carlo)", "MNIST, 1 input quadrant(s)",
                     "negative CLL (nats/image)", -0.5),
     "same direction, smaller effect (full)", "no effect beyond noise (full)"),
    # the quadrant gaps no longer shrinking at full scale
    ("cvae-gap-shrinks", ("cvae_full", "gap NN - CVAE (Monte Carlo)", "MNIST, 3 input quadrant(s)",
                          "negative CLL (nats/image)", 14.0),
     "reproduced (decreasing) (full)", "not reproduced (full)"),
    # the symmetric chain drifting as far as the ELBO's
    ("symvae-mnist-ladder", ("symvae_quick", "Symmetric", "mnist (ladder)",
                             "Fréchet on PCA-64 pixel features vs test set, limiting chain 1000 steps", 44.0),
     "same direction, smaller effect (quick)", "no effect beyond noise (quick)"),
    # a LagVAE point far from its e1
    ("lagvae-e1-mi+1", ("lagvae_quick", "LagVAE mi=+1", "binarised MNIST",
                        "e1=119: -ELBO of training batches (paper: converges to e1)", 110.0),
     "partly reproduced (2 of 4) (quick)", "partly reproduced (1 of 4) (quick)"),
])
def test_changing_a_number_changes_the_verdict(committed, claim_id, change, before, after):
    assert verdict_of(committed, claim_id) == before
    set_ours(committed, *change)
    assert verdict_of(committed, claim_id) == after


def test_a_missing_row_is_not_run_and_a_new_summary_is_picked_up(committed):
    """The settings other helpers add appear by their rows, wherever they are written: a claim is 'not run' until
    a summary of its family holds the row."""
    quick = json.loads((committed / "symvae_quick.json").read_text())
    quick["rows"] = [row for row in quick["rows"] if row["dataset"] != "mnist (reverse)"]
    (committed / "symvae_quick.json").write_text(json.dumps(quick))
    assert verdict_of(committed, "symvae-mnist-reverse") == NOT_RUN
    metric = "Fréchet on PCA-64 pixel features vs test set, limiting chain 1000 steps"
    quick["rows"] = [{"method": method, "dataset": "mnist (reverse)", "metric": metric, "ours": value, "paper": None,
                      "scale": "test"} for method, value in (("ELBO", 30.0), ("Symmetric", 10.0))]
    (committed / "symvae_quick_reverse.json").write_text(json.dumps(quick))
    assert verdict_of(committed, "symvae-mnist-reverse") == REPRODUCED + " (quick)"  # 3.0x against the README's 2.87x


def test_every_claim_has_a_source_and_its_rows_are_unambiguous():
    data = load_claims(REPO / "results")
    summaries = load_summaries(REPO / "results")
    assert len({claim["id"] for claim in data["claims"]}) == len(data["claims"])
    for claim in data["claims"]:
        assert claim["source"].split(",")[0] in data["papers"], claim["id"]
        assert claim["family"] in data["reproduce"], claim["id"]
        for kind in ("quick", "full"):
            measure_ours(claim, summaries, kind)  # raises on a selector that fits two rows


def test_the_paper_values_of_the_claims_are_those_beside_our_rows():
    """Where a summary row carries the paper's number (the summarize modules' tables) it agrees with claims.json."""
    data, summaries = load_claims(REPO / "results"), load_summaries(REPO / "results")
    checked = 0
    for claim in data["claims"]:
        if claim["measure"] != "value" or claim.get("paper") is None:
            continue
        paper = claim["paper"][0] if isinstance(claim["paper"], list) else claim["paper"]
        for kind in ("quick", "full"):
            for _, _, row in find_rows(summaries, claim["family"], kind, claim["rows"][0]):
                beside = str(row["paper"]).split(" (tutorial")[0].split(" / ")[-1]  # CVAE: 'tutorial / paper (...)'
                assert parse_number(beside, claim["id"])[0] == pytest.approx(paper, rel=0.01), claim["id"]
                checked += 1
    assert checked >= 6

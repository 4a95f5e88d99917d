"""benchmarks/bench_tune.py's choices: which searched configurations are confirmed on the test
split (read from validation and measured counts only) and what a confirmed one beats."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_tune", REPO / "benchmarks" / "bench_tune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trial(n, f1, m4, arena=10_000, flash=50_000):
    return {"trial": n, "validation_macro_f1": f1, "instructions": {"cortex-m4": m4, "cortex-m55": m4 // 2},
            "arena": arena, "flash": flash, "config": {}, "head": "mean pooling"}


BASELINES = [{"model": "Ignatov", "test_macro_f1": 0.89, "m4": 1_400_000},
             {"model": "CNN", "test_macro_f1": 0.94, "m4": 3_200_000}]


def test_hapt_shortlists_are_the_best_short_runs_below_each_baseline_and_the_start_points(bench):
    trials = [trial(0, 0.90, 500_000), trial(1, 0.95, 1_000_000), trial(2, 0.97, 2_000_000),
              trial(3, 0.99, 3_000_000, arena=90_000),  # best, but over the arena budget
              trial(4, 0.80, 1_200_000)]
    trials[4]["config"] = {"start": 1}
    search = {"name": "hapt", "all": trials, "chosen": None,
              "limits": {"instructions": 3_200_000, "arena": 65_536, "flash": 262_144}}
    got = bench.shortlist(search, BASELINES, 1, [{"start": 1}])
    assert [[t["trial"] for t in g["trials"]] for g in got] == [[1, 4], [2, 4]]
    assert "Ignatov" in got[0]["why"] and "CNN" in got[1]["why"]


def test_wrist_shortlist_keeps_the_budget_and_counts_a_configuration_once(bench):
    trials = [trial(0, 0.70, 600_000), trial(1, 0.66, 180_000), trial(2, 0.60, 450_000), trial(3, 0.65, 300_000),
              trial(4, 0.66, 180_000)]
    for i, t in enumerate(trials):
        t["config"] = {"n": min(i, 1) if i in (1, 4) else i}  # trial 4 samples trial 1's configuration again
    search = {"name": "wrist", "budget": "instructions=500,000", "all": trials,
              "limits": {"instructions": 500_000, "arena": None, "flash": None}}
    assert [t["trial"] for t in bench.shortlist(search, [], 2, [])[0]["trials"]] == [1, 3]


def test_the_full_recipe_validation_chooses_and_one_trial_is_confirmed_once(bench):
    a, b = trial(0, 0.99, 500_000), trial(1, 0.95, 2_000_000)
    groups = [{"why": "below Ignatov", "trials": [a]}, {"why": "below CNN", "trials": [a, b]}]
    got = bench.choose_refined(groups, {0: 0.96, 1: 0.97})
    assert [(c["trial"]["trial"], c["why"]) for c in got] == [
        (0, "best full-recipe validation macro-F1 below Ignatov"), (1, "best full-recipe validation macro-F1 below CNN")]
    got = bench.choose_refined(groups, {0: 0.98, 1: 0.97})
    assert len(got) == 1 and "Ignatov" in got[0]["why"] and "CNN" in got[0]["why"]


def test_start_points_are_in_the_search_space(bench):
    import optuna

    from edgehar.tune import space

    for name in ("hapt", "wrist"):
        for cfg in bench.start_points(name):
            assert space.suggest(optuna.trial.FixedTrial(space.params_of(cfg))) == cfg


def test_a_confirmed_row_beats_a_baseline_only_with_a_higher_test_f1_at_fewer_instructions(bench):
    row = {"search": "hapt", "test_macro_f1_mean": 0.92, "m4": 600_000}
    assert [b.split(" ")[0] for b in bench.beats(row, BASELINES)] == ["Ignatov"]
    assert bench.beats({**row, "m4": 1_500_000}, BASELINES) == []
    wrist = {"search": "wrist", "test_macro_f1_mean": 0.83, "m4": 400_000}
    assert bench.beats(wrist, BASELINES) and not bench.beats({**wrist, "test_macro_f1_mean": 0.80}, BASELINES)

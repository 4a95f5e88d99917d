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


def test_hapt_candidates_are_the_best_validation_below_each_baseline(bench):
    trials = [trial(0, 0.90, 500_000), trial(1, 0.95, 1_000_000), trial(2, 0.97, 2_000_000),
              trial(3, 0.99, 3_000_000, arena=90_000)]  # best, but over the arena budget
    search = {"name": "hapt", "all": trials, "chosen": None,
              "limits": {"instructions": 3_200_000, "arena": 65_536, "flash": 262_144}}
    got = bench.candidates(search, BASELINES)
    assert [c["trial"]["trial"] for c in got] == [1, 2]
    assert "Ignatov" in got[0]["why"] and "CNN" in got[1]["why"]


def test_one_configuration_best_below_every_baseline_is_confirmed_once(bench):
    search = {"name": "hapt", "all": [trial(0, 0.99, 500_000), trial(1, 0.95, 2_000_000)], "chosen": None,
              "limits": {"instructions": None, "arena": None, "flash": None}}
    got = bench.candidates(search, BASELINES)
    assert [c["trial"]["trial"] for c in got] == [0] and "Ignatov" in got[0]["why"] and "CNN" in got[0]["why"]


def test_a_confirmed_row_beats_a_baseline_only_with_a_higher_test_f1_at_fewer_instructions(bench):
    row = {"search": "hapt", "test_macro_f1_mean": 0.92, "m4": 600_000}
    assert [b.split(" ")[0] for b in bench.beats(row, BASELINES)] == ["Ignatov"]
    assert bench.beats({**row, "m4": 1_500_000}, BASELINES) == []
    wrist = {"search": "wrist", "test_macro_f1_mean": 0.83, "m4": 400_000}
    assert bench.beats(wrist, BASELINES) and not bench.beats({**wrist, "test_macro_f1_mean": 0.80}, BASELINES)

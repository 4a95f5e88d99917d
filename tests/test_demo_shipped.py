"""`edgehar demo` on the REAL shipped zoo, as a user runs it after install (`EDGEHAR_DATA` set,
no training): the live agreement and per-class figures it prints are the ones the shipped
wrist-tiny's card records, and the README's set-up section states the same agreement."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgehar.demo.config import DEFAULT_MODEL

pytestmark = [pytest.mark.data, pytest.mark.slow]

README = Path(__file__).resolve().parents[1] / "README.md"
# the README's set-up section: "... live agreement 0.XXXX over N windows ..."
STATED = re.compile(r"live agreement (\d\.\d+) over (\d+) windows")


def readme_figure() -> tuple[str, int]:
    text = README.read_text(encoding="utf-8")
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    found = STATED.search(setup)
    assert found, "the README's set-up section states no 'live agreement A over N windows'"
    return found.group(1), int(found.group(2))


def test_the_demo_deploys_the_wrist_student_best_on_validation():
    """The deploy flow's default is chosen on the corpus validation subjects, never on Bangle.js."""
    from edgehar import zoo

    wrist = {n: e["figures"]["validation"]["macro_f1"] for n, e in zoo.index()["models"].items()
             if e["kind"] == "student" and e["task"].startswith("wrist")}
    assert max(wrist, key=wrist.get) == DEFAULT_MODEL, wrist
    # the README and `edgehar demo --help` name the same default
    assert f"the shipped wrist student `{DEFAULT_MODEL}`" in README.read_text(encoding="utf-8")
    help_text = subprocess.run([sys.executable, "-m", "edgehar", "demo", "--help"], capture_output=True, text=True).stdout
    assert f"default {DEFAULT_MODEL}," in " ".join(help_text.split()), help_text


def test_the_demo_prints_the_cards_and_the_readmes_live_figures(data_root, tmp_path):
    from edgehar import zoo

    env = {k: v for k, v in os.environ.items() if k != zoo.ENV}  # the shipped zoo, not a test's
    env["EDGEHAR_DATA"] = str(data_root)
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "edgehar", "demo", "--out", str(out)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    card = zoo.entry(DEFAULT_MODEL)["figures"]["live"]
    summary = json.loads((out / "demo.json").read_text())
    assert summary["flow"] == "deploy" and summary["model"]["name"] == DEFAULT_MODEL
    printed = summary["live"]["figures"]
    # printed == card, to the digit: agreement, every class's, the windows scored
    assert printed == card, (printed, card)
    assert summary["live"]["equals_card"]
    line = (f"live agreement {card['agreement']:.4f} over {card['n']} windows of banglejs_wrist user 2: "
            + ", ".join(f"{c} {v:.4f}" for c, v in card["per_class"].items()))
    assert line in run.stdout, run.stdout
    assert "equal to the card's live figures" in run.stdout
    # the README states the same figure (to the decimals it writes)
    stated, n = readme_figure()
    decimals = len(stated.split(".")[1])
    assert (stated, n) == (f"{card['agreement']:.{decimals}f}", card["n"]), (stated, n, card)
    # the bytes that ran are the shipped ones
    index = zoo.entry(DEFAULT_MODEL)
    from edgehar.digest import file_sha256

    shipped = f"{index['files']['artifact']}/model_int8.tflite"
    assert file_sha256(out / "export" / "model_int8.tflite") == index["sha256"][shipped]

"""The zoo edgehar ships (`edgehar/zoo/`, not a temporary one): its six models are there, every
shipped byte matches the sha256 in index.json, and, with the data at hand, every model re-scored
on its test data gives the figures its entry states, to the last stored digit.

The figures come from `edgehar.bench.zoo`, the one scoring path the zoo build
(`benchmarks/build_zoo.py`) used: students through their shipped int8 TFLite file, teachers
through torch (the language teacher zero-shot by its labels' descriptions); wrist models on the
test subjects of the pooled corpus (a data set per key of `figures["test"]`) and on Bangle.js,
waist models on HAPT's official test subjects.
"""

import pytest

from edgehar import zoo
from edgehar.digest import file_sha256

REQUIRED = ("wrist-teacher", "wrist-language", "wrist-small", "wrist-tiny", "hapt-small", "hapt-tiny")
NOT_DATA_SETS = ("n", "pool_mean", "bangle", "bangle_clean")  # figures["test"] keys that are not sets


@pytest.fixture(autouse=True)
def shipped_zoo(monkeypatch):
    """The package's own zoo, whatever EDGEHAR_ZOO says."""
    monkeypatch.delenv(zoo.ENV, raising=False)


def shipped() -> dict:
    return zoo.index()["models"]


def test_the_six_models_are_shipped():
    missing = [n for n in REQUIRED if n not in shipped()]
    assert not missing, f"not in edgehar/zoo/index.json: {', '.join(missing)} (run benchmarks/build_zoo.py)"


def test_every_shipped_file_matches_its_sha256():
    models = shipped()
    for name, e in models.items():
        shipped_files = {e["files"]["checkpoint"]} | ({e["files"]["windows"]} if "windows" in e["files"] else set())
        if "artifact" in e["files"]:
            folder = e["files"]["artifact"]
            shipped_files |= {f"{folder}/{n}" for n in zoo.ARTIFACT_FILES}
            shipped_files |= {f"{folder}/{f.name}" for f in (zoo.zoo_dir() / folder).iterdir()}
        assert shipped_files == set(e["sha256"]), f"{name}: files without a recorded sha256, or missing"
        for rel, digest in e["sha256"].items():
            assert file_sha256(zoo.zoo_dir() / rel) == digest, f"{name}: {rel} does not match its sha256"


def test_each_entry_describes_its_model():
    for name, e in shipped().items():
        assert e["name"] == name and e["kind"] in zoo.KINDS
        assert ("artifact" in e["files"]) == ("windows" in e["files"]) == (e["kind"] == "student")
        card = zoo.card(name)
        assert e["classes"] == list(card.labels)
        assert e["input"] == {"rate": card.rate, "window": card.window, "channels": list(card.channels)}
        assert e["figures"]["test"] and e["figures"]["test_seeds"], name
        for key in ("commit", "command", "seed", "seeds"):
            assert key in e["provenance"], f"{name}: provenance lacks {key}"


# -- re-scored on the data ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wrist_corpus(data_root, tmp_path_factory):
    from edgehar.bench.zoo import build_wrist_corpus

    return build_wrist_corpus(data_root, tmp_path_factory.mktemp("zoo-corpus") / "corpus")


def predictor(name: str, e: dict):
    """(predict(x) -> class indices, card) of a shipped model, as the zoo build scored it."""
    from edgehar.bench import zoo as figures

    if e["kind"] == "student":
        return figures.int8_predict(zoo.resolve(name, "artifact")), zoo.card(name)
    from edgehar.models.teacher import load_teacher

    model, card, _ = load_teacher(zoo.resolve(name, "checkpoint"))
    scored = figures.language_predict if card.arch.get("name") == "language" else figures.torch_predict
    return scored(model, card), card


def data_sets(e: dict) -> list[str]:
    return [k for k in e["figures"]["test"] if k not in NOT_DATA_SETS]


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", REQUIRED)
def test_shipped_model_rescored_on_its_data_gives_its_figures(name, data_root, request):
    from edgehar.bench import zoo as figures

    e = shipped().get(name)
    if e is None:
        pytest.fail(f"{name} is not shipped (run benchmarks/build_zoo.py)")
    predict, card = predictor(name, e)
    labels = list(card.labels)
    sets = data_sets(e)
    if sets == ["hapt"]:
        _, _, _, test = figures.hapt_data(data_root)
        got = figures.hapt_figures(predict, labels, test.labelled())
    else:
        assert sorted(sets) == sorted(figures.WRIST_DATASETS), f"{name}: test figures on {sets}"
        corpus = request.getfixturevalue("wrist_corpus")
        got = figures.wrist_figures(predict, labels, figures.wrist_data(data_root, corpus, card))
    assert got == e["figures"]["test"]


def test_each_student_carries_the_configuration_the_build_chose():
    """The shipped students' architectures are `benchmarks/build_zoo.py`'s STUDENTS: the tune
    benchmark's choices (benchmarks/results/tune.json) and a named size."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from build_zoo import student_configs

    for prefix, config in student_configs().items():
        name = prefix.replace("_", "-")
        arch = zoo.card(name).arch["config"]
        assert arch["size"] == name, (name, arch["size"])
        assert {k: arch[k] for k in config} == config, name

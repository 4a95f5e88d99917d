"""`benchmarks/build_zoo.py`'s student configurations: read from the tune benchmark's report."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import build_zoo

from edgehar.models.student import DEFAULTS, SIZES, student_config


def test_students_come_from_the_tune_report_and_the_named_sizes():
    report = json.loads((build_zoo.RESULTS / "tune.json").read_text())
    confirmed = {(c["search"], c["trial"]): c["config"] for c in report["confirmed"]}
    configs = build_zoo.student_configs()
    assert set(configs) == set(build_zoo.STUDENTS)
    for prefix, (source, key) in build_zoo.STUDENTS.items():
        expected = SIZES[key] if source == "named" else confirmed[tuple(key)]
        assert configs[prefix] == {**DEFAULTS, **expected}
        # a job's size builds: the zoo name with that configuration
        cfg = student_config(build_zoo.student_size({"size": prefix, "config": configs[prefix]}), 100, 3,
                             {"acc": [0, 1, 2]}, {"activity": 4})
        assert cfg["size"] == prefix and cfg["widths"] == configs[prefix]["widths"]


def test_a_configuration_the_tune_report_lacks_stops_the_build(tmp_path, capsys):
    report = tmp_path / "tune.json"
    report.write_text(json.dumps({"confirmed": []}))
    with pytest.raises(SystemExit) as stopped:
        build_zoo.student_configs(report)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"build_zoo: error: {report}: no confirmed configuration for ")


def test_a_shipped_card_names_build_files_without_this_machines_folders(tmp_path):
    corpus, teacher = str(tmp_path / "work" / "corpus20"), str(tmp_path / "work" / "models" / "t.pt")
    provenance = {"data": {"root": corpus, "split": "corpus train"}, "teacher": {"spec": teacher},
                  "runs": [corpus, 3], "note": f"from {corpus}"}
    shown = build_zoo.shown_paths(provenance, [corpus, teacher])
    assert shown == {"data": {"root": ".../corpus20", "split": "corpus train"}, "teacher": {"spec": ".../t.pt"},
                     "runs": [".../corpus20", 3], "note": f"from {corpus}"}


def test_the_builder_trains_once_and_reuses_by_content_key(tmp_path, monkeypatch):
    trained = []

    def fake_job(job):
        trained.append(Path(job["path"]).name)
        Path(job["path"]).write_text(json.dumps(job["recipe"]))
        return {"cpu_seconds": 1.5}

    monkeypatch.setattr(build_zoo, "train_job", fake_job)
    specs = {"t.pt": ({"kind": "hapt_teacher", "seed": 0, "recipe": {"steps": 3}, "corpus": "/x"}, "data-sha")}
    (tmp_path / "models").mkdir()
    builder = build_zoo.Builder(tmp_path / "models", tmp_path, jobs=1)
    assert builder.run(specs) == {"t.pt": tmp_path / "models" / "t.pt"}
    assert trained == ["t.pt"] and builder.cpu == {"t.pt": 1.5} and builder.reused == []
    again = build_zoo.Builder(tmp_path / "models", tmp_path, jobs=1)
    assert again.run(specs) == {"t.pt": tmp_path / "models" / "t.pt"}
    assert trained == ["t.pt"] and again.reused == ["t.pt"] and again.cpu == {"t.pt": 1.5}  # read back

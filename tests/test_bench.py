"""The benchmark logic in the package: reuse by content hash, the README table, target checks."""

import json

import numpy as np
import pytest

from edgehar.bench import table
from edgehar.bench.manifest import Manifest, content_key, windows_sha256
from edgehar.bench.provenance import Run, command_line
from edgehar.data.windows import Windows


def windows(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return Windows(x=rng.normal(size=(n, 16, 3)).astype(np.float32), y=rng.integers(0, 2, n),
                   subject=np.arange(n) % 3, rate=50.0, channels=("acc_x", "acc_y", "acc_z"),
                   units=("g",) * 3, label_names=("a", "b"), hop=8)


def test_content_key_changes_with_recipe_code_and_data():
    data = windows_sha256(windows())
    key = content_key({"steps": 3}, ["edgehar.recipes"], data)
    assert key == content_key({"steps": 3}, ["edgehar.recipes"], data)
    assert key != content_key({"steps": 4}, ["edgehar.recipes"], data)
    assert key != content_key({"steps": 3}, ["edgehar.recipes", "edgehar.models.student"], data)
    assert key != content_key({"steps": 3}, ["edgehar.recipes"], windows_sha256(windows(seed=1)))
    w = windows()
    w.y[0] = 1 - w.y[0]  # one label changed is other data
    assert windows_sha256(w) != data


def test_manifest_reuses_only_the_same_key_and_bytes(tmp_path):
    made = []

    def make(path):
        made.append(path.name)
        path.write_bytes(b"model %d" % len(made))

    m = Manifest(tmp_path)
    path, reused = m.build("m.pt", "k1", {"steps": 1}, make)
    assert not reused and made == ["m.pt"]
    assert Manifest(tmp_path).build("m.pt", "k1", {"steps": 1}, make) == (path, True)  # read back from disk
    assert not Manifest(tmp_path).build("m.pt", "k2", {"steps": 2}, make)[1]  # another recipe
    path.write_bytes(b"edited by hand")
    assert not Manifest(tmp_path).build("m.pt", "k2", {"steps": 2}, make)[1]  # other bytes
    assert len(made) == 3
    entry = json.loads((tmp_path / "manifest.json").read_text())["m.pt"]
    assert entry["key"] == "k2" and entry["recipe"] == {"steps": 2}


def write_model(path, text):
    """A job of `Manifest.build_many` (module level: a spawned process imports it)."""
    if text == "fail":
        raise ValueError("this recipe fails")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return len(text)


@pytest.mark.parametrize("processes", [1, 2])
def test_build_many_makes_what_is_not_reusable_and_reports_failures(tmp_path, processes):
    m = Manifest(tmp_path)
    jobs = {name: (f"key-{name}", {"name": name}, write_model, (tmp_path / name, text))
            for name, text in (("a.pt", "aa"), ("sub/b.pt", "bbb"))}
    done = []
    made = m.build_many(jobs, processes, done=lambda name, result: done.append((name, result)))
    assert made == {"a.pt": (tmp_path / "a.pt", False, 2), "sub/b.pt": (tmp_path / "sub/b.pt", False, 3)}
    assert sorted(done) == [("a.pt", 2), ("sub/b.pt", 3)]
    # a second run reuses both; a changed key and a failing job
    jobs["a.pt"] = ("other key", {"name": "a.pt"}, write_model, (tmp_path / "a.pt", "fail"))
    failures = []
    again = Manifest(tmp_path).build_many(jobs, processes, failed=lambda name, e: failures.append((name, str(e))))
    assert again == {"sub/b.pt": (tmp_path / "sub/b.pt", True, None)}
    assert failures == [("a.pt", "this recipe fails")]
    with pytest.raises(ValueError, match="this recipe fails"):
        Manifest(tmp_path).build_many(jobs, processes)


def row(name, kind, fmt, f1, macs):
    return {"name": name, "kind": kind, "format": fmt, "macro_f1": f1, "accuracy": f1, "params": 10, "macs": macs}


def test_targets_met_and_missed():
    best = row("teacher", "teacher", "fp32", 0.95, 10_000_000)
    small = row("student small", "student", "int8 TFLite", 0.945, 150_000)
    tiny = row("student tiny", "student", "int8 TFLite", 0.93, 90_000)
    rows = [best, small, tiny, row("cnn", "baseline", "fp32 ONNX", 0.93, 1_000_000),
            row("ign", "baseline", "fp32 ONNX", 0.90, 100_000), row("ign", "baseline", "int8 ONNX", 0.90, 100_000)]
    t = table.check_targets(rows, best, small, [tiny])
    met = [x["met"] for x in t]
    # >= 0.94; within 1 point (0.5); 1.5% of MACs; beats cnn at fewer MACs; ign has fewer MACs than small
    assert met == [True, True, True, True, False]
    assert "student tiny meets it" in t[-1]["measured"]  # tiny: 0.93 >= 0.90 at 90k <= 100k
    worse = dict(small, macro_f1=0.935)
    assert [x["met"] for x in table.check_targets(rows, best, worse, [])][:2] == [False, False]


def test_table_has_one_cell_per_column():
    r = {**row("student small", "student", "int8 TFLite", 0.9, 5), "arena_bytes": None, "flash_bytes": 7,
         "tflm_unsupported_ops": ["GELU"], "latency_ms": 0.1, "m4f_ms": None, "wrist_f1": 0.5,
         "wrist_input": "acc, gyro absent"}
    head, rule, line = table.table([r])
    assert head.count("|") == rule.count("|") == line.count("|")
    assert "n/a (TFLM lacks GELU)" in line and "0.500 (gyro absent)" in line


def test_update_readme_replaces_only_the_marked_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- benchmark:start -->\nold\n<!-- benchmark:end -->\nafter\n")
    table.update_readme(readme, "new table\n", [("plot", tmp_path / "r" / "p.png")])
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("after\n") and "old" not in text
    assert "new table" in text and "![plot](r/p.png)" in text
    table.update_readme(readme, "wrist table\n", [], section="wrist", title="## Wrist")
    table.update_readme(readme, "wrist again\n", [], section="wrist", title="## Wrist")
    text = readme.read_text()
    assert "new table" in text and text.count("## Wrist") == 1 and "wrist again" in text
    assert "wrist table" not in text and text.index("<!-- wrist:start -->") > text.index("after")


def test_run_stamp_names_the_command(tmp_path):
    stamp = Run(tmp_path / "bench.py", ["--fast", "a b"], tmp_path).stamp()
    assert stamp["command"].endswith("python bench.py --fast 'a b'")
    assert stamp["commit"] == "unknown" and stamp["cpu_seconds"] >= 0
    assert command_line("x.py", []).endswith("python x.py")


def test_command_line_names_the_variables_that_were_set(monkeypatch):
    monkeypatch.setenv("EDGEHAR_DATA", "/data")
    monkeypatch.delenv("EDGEHAR_TOOLCHAINS", raising=False)
    assert command_line("x.py", ["-v"]) == "EDGEHAR_DATA=... python x.py -v"
    monkeypatch.setenv("EDGEHAR_TOOLCHAINS", "/tc")
    assert command_line("x.py", []) == "EDGEHAR_DATA=... EDGEHAR_TOOLCHAINS=... python x.py"


@pytest.mark.parametrize("fraction", [0.15, 0.3])
def test_validation_split_is_subject_disjoint(fraction):
    from edgehar.recipes import split_train_validation

    w = windows(n=40)
    w.subject[:] = np.arange(40) % 10
    train, val, test = split_train_validation(w, [0, 1], seed=3, fraction=fraction)
    s = [set(train.subject.tolist()), set(val.subject.tolist()), set(test.subject.tolist())]
    assert s[2] == {0, 1} and len(s[1]) == round(fraction * 8)
    assert not (s[0] & s[1] or s[0] & s[2] or s[1] & s[2]) and len(train) + len(val) + len(test) == 40


def test_mcu_cell_prefers_the_measured_count():
    measured = {**row("student tiny", "student", "int8 TFLite", 0.9, 5), "m4f_ms": 10.7,
                "m4_instructions": 1_696_825, "m55_instructions": 733_900}
    estimated = {**row("cnn", "baseline", "fp32 ONNX", 0.9, 5), "m4f_ms": 262.2}
    assert table.mcu_cell(measured) == "1,696,825 / 733,900"
    assert table.mcu_cell(estimated) == "~262.2 ms est."
    assert table.mcu_cell({"m4f_ms": None}) == "-"


def wrist_windows(labels, names):
    from edgehar.data.windows import Windows

    y = np.array([names.index(n) for n in labels], np.int64)
    return Windows(x=np.zeros((len(y), 4, 3), np.float32), y=y, subject=np.zeros(len(y), np.int64), rate=20.0,
                   channels=("acc_x", "acc_y", "acc_z"), units=("g",) * 3, label_names=tuple(names), hop=2)


def test_wrist_macro_f1_counts_unknown_predictions_as_errors():
    from edgehar.bench.wrist import macro_f1

    w = wrist_windows(["walking", "walking", "sitting", "lying"], ["walking", "sitting", "lying"])
    assert macro_f1(["walking", "walking", "sitting", "lying"], w)["macro_f1"] == 1.0
    r = macro_f1(["walking", "kicking", "sitting", "lying"], w)  # "kicking": the (other) column
    assert r["n"] == 4 and r["macro_f1"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert macro_f1(["walking", "walking", "sitting", "sitting"], w, ["walking", "sitting"])["n"] == 3


def test_wrist_pool_mean_leaves_out_sets_with_few_test_windows():
    from edgehar.bench.wrist import MIN_POOL_WINDOWS, score_row

    names = ["walking", "running", "sitting", "lying"]
    big = wrist_windows(["walking", "sitting"] * MIN_POOL_WINDOWS, names)
    small = wrist_windows(["walking", "running"], names)
    predict_walking = lambda x: np.zeros(len(x), np.int64)  # noqa: E731
    row = score_row("m", predict_walking, names, {"big": big, "small": small}, big, big)
    assert row["small"] == pytest.approx(1 / 3) and row["big"] == pytest.approx(1 / 3)
    assert row["pool_mean"] == row["big"] and row["bangle_n"] == 2 * MIN_POOL_WINDOWS


def test_wrist_report_states_targets_and_choices():
    from edgehar.bench.wrist import markdown

    row = {"name": "wrist student small int8", "bangle_clean": 0.8, "pool_mean": 0.9, "wisdm_watch_n": 10,
           "m4_instructions": 2047118, "m55_instructions": 861655}
    z = {"macro_f1": 0.5, "chance_macro_f1": 0.2, "unseen": ["kicking"], "per_class_f1": {"kicking": 0.3},
         "chance_per_class_f1": {"kicking": 0.2}, "unseen_mean_f1": 0.3, "unseen_chance_f1": 0.2}
    runs = {"0.1/pretrained": {"mean": 0.80, "std": 0.01}, "0.1/random": {"mean": 0.78, "std": 0.02}}
    result = {"rows": [row], "teacher_choice": {"on": "validation", "candidates": {"10": 0.5, "20": 0.6}, "chosen": 20},
              "student_choice": {"on": "validation", "sizes": {"small": {"candidates": {"4": 0.7, "8": 0.65}, "chosen": 4}}},
              "leave_one_out": {"wisdm_watch": {"seen_windows": 5, "macro_f1_with": 0.9, "macro_f1_without": 0.7,
                                                "zero_shot": z, "zero_shot_language": z, "label_efficiency": runs}},
              "reused_checkpoints": ["teacher.pt"],
              "provenance": {"command": "x", "commit": "c", "cpu_seconds": 1, "wall_seconds": 1, "torch_threads": 1}}
    md = markdown(result)
    assert "0.800 (missed by 0.050)" in md and "0.900 (met)" in md
    assert "10 steps 0.5000, 20 steps 0.6000 -> 20 steps" in md and "kicking 0.300 (0.200)" in md
    assert "+2.0 (missed)" in md and "teacher.pt" in md
    assert "small: 4 steps 0.7000, 8 steps 0.6500 -> 4 steps" in md
    assert "| 2,047,118 / 861,655 |" in md


def test_reports_show_no_path_of_the_build_machine(monkeypatch, tmp_path):
    from edgehar.bench.provenance import shown_path

    data = tmp_path / "data"
    monkeypatch.setenv("EDGEHAR_DATA", str(data))
    monkeypatch.delenv("EDGEHAR_TOOLCHAINS", raising=False)
    repo = tmp_path / "repo"
    assert shown_path(repo / "benchmarks" / "x.pt", repo) == "benchmarks/x.pt"
    assert shown_path(data / "limu_bert", repo) == "$EDGEHAR_DATA/limu_bert"
    assert shown_path("/tmp/wfm/clean", repo) == ".../clean"
    line = command_line("b.py", ["--work", "/tmp/wfm/clean", "--steps", "3"], repo=repo)
    assert line == "EDGEHAR_DATA=... python b.py --work .../clean --steps 3"

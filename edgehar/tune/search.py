"""The search of `edgehar tune`: an Optuna multi-objective study, stored in DIR/study.db.

Objectives: validation macro-F1 (up), instructions on the first target, arena, flash (down);
sampler: multi-objective TPE, seeded, with the budget as constraints (a trial over budget still
informs the model of the space, but the sampler prefers configurations within it).

Start points (`start`): configurations tried first, in order (Optuna's `enqueue_trial`), e.g.
an earlier study's front or a named size cut to the budget; they count towards --trials, and a
start point already tried is not tried again.

Resuming: rerunning the same command with the same --out continues the study. Trials that
completed are kept; a trial that was running when the process was killed is marked failed and
its configuration is tried again first; the search stops when --trials trials have completed
in all (not --trials more). A rerun with another teacher, data, targets, steps or seed is
refused (the budget may change: it only filters the front).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from edgehar.data.registry import is_folder_arg
from edgehar.data.windows import Windows
from edgehar.errors import UserError, first_line, warn
from edgehar.export.pipeline import export_student
from edgehar.mcu.toolchain import find_toolchain
from edgehar.models.student import token_count
from edgehar.outputs import claim_folder, mark_folder
from edgehar.tune import space
from edgehar.tune.budget import Budget
from edgehar.tune.measure import measure_student
from edgehar.tune.pareto import report, write_report
from edgehar.tune.trial import load_tune_data, run_trial, untrained_student

COMMAND = "tune"
STUDY = "study.db"
OWN_NAMES = [STUDY, STUDY + "-journal", "trials", "chosen", "pareto.json", "pareto.md", "pareto.png"]
MAX_FAILURES_IN_A_ROW = 3


def claim_tune_folder(out, inputs) -> Path:
    return claim_folder(out, COMMAND, inputs=inputs)


def check_possible(smallest: dict, budget: Budget, where) -> None:
    """One line when even the smallest configuration of the space is over budget."""
    worst = max(smallest["instructions"], key=smallest["instructions"].get)
    checks = [("instructions", smallest["instructions"][worst], budget.instructions, f" on {worst}"),
              ("arena", smallest["arena"], budget.arena, ""), ("flash", smallest["flash"], budget.flash, "")]
    for key, value, limit, on in checks:
        if limit is not None and value > limit:
            raise UserError(where, f"impossible budget: {key}={limit:,} is below the smallest configuration "
                                   f"of the search space, measured at {value:,}{on}")


def open_study(folder: Path, settings: dict, budget: Budget, seed: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)  # constraints: Trial.set_constraint
    study = optuna.create_study(storage=f"sqlite:///{folder / STUDY}", study_name=COMMAND, sampler=sampler,
                                directions=["maximize", "minimize", "minimize", "minimize"], load_if_exists=True)
    saved = study.user_attrs.get("settings")
    if saved is None:
        study.set_user_attr("settings", settings)
    elif saved != settings:
        changed = ", ".join(k for k in settings if saved.get(k) != settings[k])
        raise UserError(folder, f"holds a tune with other settings ({changed}); rerun with the same ones "
                                "to resume, or choose another --out")
    return study


def requeue_interrupted(study) -> None:
    """Trials a kill or Ctrl-C cut short: marked failed, their configuration asked again first."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    done = [t.params for t in trials if t.state in (TrialState.COMPLETE, TrialState.WAITING)]
    for t in trials:
        if t.state == TrialState.FAIL and "error" not in t.user_attrs and t.params not in done:
            study.enqueue_trial(t.params)
            done.append(t.params)


def enqueue_starts(study, start: list[dict]) -> None:
    """Each start configuration as a trial to run before the sampler's own (once per study)."""
    for cfg in start:
        study.enqueue_trial(space.params_of(cfg), skip_if_exists=True)


def completed(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def row_of(trial) -> dict:
    return {"trial": trial.number, **trial.user_attrs["figures"]}


def run_search(data, toolchain, folder: Path, targets: list[str], budget: Budget, trials: int, steps: int,
               seed: int, settings: dict, progress: bool = True, start: list[dict] = ()) -> list[dict]:
    """Run (or resume) the study until `trials` trials completed; their rows."""
    from optuna.trial import TrialState

    study = open_study(folder, settings, budget, seed)
    requeue_interrupted(study)
    enqueue_starts(study, start)
    bar = tqdm(total=trials, initial=min(len(completed(study)), trials), desc="tune", unit="trial",
               disable=not progress)
    failures = 0
    try:
        while len(completed(study)) < trials:
            trial = study.ask()
            cfg = space.suggest(trial)
            name = f"tune-{trial.number}"
            size = space.size(name, cfg)
            try:
                figures = run_trial(data, size, steps, seed, folder / "trials" / f"{trial.number:04d}",
                                    toolchain, targets)
            except Exception as e:  # noqa: BLE001 - one bad configuration must not end the search
                trial.set_user_attr("error", first_line(e, 300))
                study.tell(trial, state=TrialState.FAIL)
                failures += 1
                if failures >= MAX_FAILURES_IN_A_ROW:
                    raise
                warn(f"trial {trial.number}", f"failed: {first_line(e)}")
                continue
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)  # interrupted: asked again on resume
                raise
            failures = 0
            figures.update(config=cfg, head=space.head_variant(cfg), steps=steps, tokens=token_count(
                {"window": data.teacher_card.window, "kernel": cfg["kernel"], "strides": cfg["strides"]}))
            trial.set_user_attr("figures", figures)
            for key, excess in budget.excess(max(figures["instructions"].values()), figures["arena"],
                                             figures["flash"]).items():
                trial.set_constraint(key, excess)
            study.tell(trial, [figures["validation_macro_f1"], figures["instructions"][targets[0]],
                               figures["arena"], figures["flash"]])
            bar.update(1)
            bar.set_postfix_str(f"last F1 {figures['validation_macro_f1']:.3f}, "
                                f"{figures['instructions'][targets[0]]:,} instr")
    finally:
        bar.close()
    return [row_of(t) for t in completed(study)]


def measure_smallest(data, toolchain, targets: list[str]) -> dict:
    """The smallest configuration's figures (its file is measured in a temporary folder: a
    refused budget leaves nothing behind)."""
    model, card = untrained_student(data, space.size("tune-smallest", space.SMALLEST))
    with tempfile.TemporaryDirectory(prefix="edgehar-tune-") as tmp:
        cost = measure_student(toolchain, model, card, data.calib_x, Path(tmp) / "model_int8.tflite", targets)
    return {"config": dict(space.SMALLEST), **cost}


def export_chosen(data, folder: Path, trial: int, progress: bool) -> dict:
    """The chosen trial's student exported like `edgehar export` into `folder`/chosen."""
    held = sorted(int(s) for s in np.unique(data.validation.subject))
    windows = Windows.concat([data.train, data.validation])
    return export_student(folder / "trials" / f"{trial:04d}" / "student.pt", folder / "chosen",
                          windows=windows, test_subjects=held, progress=progress)


def tune(teacher: str, out, targets: list[str], budget: Budget, trials: int, steps: int, data: str | None = None,
         root=None, windows: str | None = None, seed: int = 0, toolchains=None, progress: bool = True,
         start: list[dict] = ()) -> dict:
    """The whole command: claim the folder, measure the smallest configuration, search (the
    `start` configurations first), report, export the chosen student. Returns the report
    (pareto.json's content)."""
    teacher_path = teacher.split(":", 1)[1] if teacher.startswith("limu-bert:") else teacher
    for cfg in start:
        space.params_of(cfg)  # a configuration outside the space fails here, before any work
    folder = claim_tune_folder(out, [teacher_path, windows, root,
                                     data if data and is_folder_arg(data) else None])
    toolchain = find_toolchain(toolchains)
    tdata = load_tune_data(teacher, data, root, windows, seed, progress)
    smallest = measure_smallest(tdata, toolchain, targets)
    check_possible(smallest, budget, "--budget")
    folder.mkdir(parents=True, exist_ok=True)
    mark_folder(folder, COMMAND, OWN_NAMES)
    settings = {"teacher": os.path.abspath(teacher_path), "data": data, "root": str(root) if root else None,
                "windows": os.path.abspath(windows) if windows else None, "targets": list(targets),
                "steps": steps, "seed": seed}
    rows = run_search(tdata, toolchain, folder, targets, budget, trials, steps, seed, settings, progress, start)
    rep = report(rows, budget, targets, smallest, {**settings, "budget": budget.to_dict(), "trials": trials})
    write_report(rep, folder)
    if rep["chosen"] is not None:
        rep["export"] = export_chosen(tdata, folder, rep["chosen"], progress)["out"]
    return rep

"""The hostile-input sweep (tests/hostile_sweep.py), one test per case: careless and hostile
input run against the real CLI as subprocesses. A case fails with everything that went wrong
listed: its exit status, a traceback, not one error line, destroyed files, residue, a hang, a
peak RSS over its bound, lost takes of `record`.

The artifacts the cases read (the zoo's wrist student, its int8 export, the zoo's teacher) and
the small corpus some of them damage are made once per session, also under pytest-xdist."""

from __future__ import annotations

import os

import pytest

from hostile_sweep import cases, made_once, make_artifacts, missing_toolchain, problems_of, run_case

CASES = cases()
assert len({c.name for c in CASES}) == len(CASES), "two cases share a name"


@pytest.fixture(scope="session")
def sweep_root(tmp_path_factory):
    """A folder every worker of the session shares (the parent of xdist's per-worker base)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def artifacts(sweep_root):
    return made_once(sweep_root / "hostile-artifacts", make_artifacts)


def marks(case):
    return [pytest.mark.data] if "data" in case.needs else []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=marks(c)) for c in CASES])
def test_hostile_input(case, artifacts, sweep_root, tmp_path, request):
    if "toolchain" in case.needs and (why := missing_toolchain()):
        pytest.skip(why)
    if "data" in case.needs:
        request.getfixturevalue("data_root")  # skips, with the reason, when EDGEHAR_DATA is unset
    r = run_case(case, tmp_path, artifacts, shared=sweep_root)
    problems = problems_of(r)
    assert not problems, (f"{case.name}: exit {r.rc} (expected {case.expect}), peak RSS "
                          f"{r.extra.get('peak_rss_mb')} MB\n  " + "\n  ".join(problems)
                          + f"\nstderr (tail): {r.err.strip()[-600:]}")

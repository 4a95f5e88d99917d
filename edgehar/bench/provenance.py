"""Where a benchmark figure comes from: the command, the commit, the time, the machine, and the
CPU time the run took (what a reader needs to reproduce it)."""

from __future__ import annotations

import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path


def git_commit(repo: str | os.PathLike) -> str:
    """HEAD's commit, with "+dirty" when the code differs from it (benchmarks/results/ is the
    benchmarks' output, not their input, so a run after another does not count); "unknown"
    outside git."""
    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results").stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def hardware() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model or platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "system": platform.platform(terse=True)}


PATH_VARIABLES = ("EDGEHAR_DATA", "EDGEHAR_TOOLCHAINS")


def shown_path(path: str | os.PathLike, repo: str | os.PathLike = ".") -> str:
    """A path as a report may show it: relative to the checkout when inside it, under
    `$EDGEHAR_DATA` / `$EDGEHAR_TOOLCHAINS` when inside those, else `...` (a folder of this
    machine's that means nothing on another)."""
    path = os.path.abspath(path)
    places = [(os.path.abspath(repo), "")] + [(os.path.abspath(os.environ[k]), f"${k}/")
                                               for k in PATH_VARIABLES if os.environ.get(k)]
    for root, prefix in places:
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            rel = os.path.relpath(path, root)
            return prefix + rel if prefix else rel
    return "..." + os.sep + os.path.basename(path)


def command_line(script: str | os.PathLike, argv, env: tuple[str, ...] = PATH_VARIABLES,
                 repo: str | os.PathLike = ".") -> str:
    """The command as a user would type it from the repository root (the data and toolchain
    variables that were set shown as `NAME=...`, an absolute path as `shown_path` shows it:
    their paths are this machine's)."""
    shown = " ".join(f"{k}=..." for k in env if os.environ.get(k))
    args = [shown_path(a, repo) if os.path.isabs(a) else a for a in map(str, argv)]
    return " ".join(filter(None, [shown, "python", str(script), *map(shlex.quote, args)]))


class Run:
    """Started when a benchmark starts; `stamp()` when it ends."""

    def __init__(self, script: str | os.PathLike, argv=None, repo: str | os.PathLike = "."):
        self.command = command_line(os.path.relpath(script, repo), sys.argv[1:] if argv is None else argv,
                                    repo=repo)
        self.commit = git_commit(repo)  # at the start: the code the run used, before it writes results
        self.t0, self.cpu0 = time.perf_counter(), cpu_seconds()

    def stamp(self) -> dict:
        import torch

        return {"command": self.command, "commit": self.commit,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "wall_seconds": round(time.perf_counter() - self.t0, 1),
                "cpu_seconds": round(cpu_seconds() - self.cpu0, 1),
                "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                "hardware": hardware()}

"""What `pip install .` (a wheel, not the editable install the tests run from) would ship: every
package folder of the one `edgehar` namespace is listed in pyproject.toml, and every file a
package reads at run time is package data."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def package_folders() -> dict[str, Path]:
    """Every folder holding an __init__.py under the mapped top-level folders, by package name."""
    cfg = setuptools_config()
    found = {}
    for package, folder in cfg["package-dir"].items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            name = ".".join([package, *rel.parts]) if rel.parts else package
            found.setdefault(name, init.parent)
    return found


def test_every_package_folder_is_listed():
    listed = set(setuptools_config()["packages"])
    missing = sorted(set(package_folders()) - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {', '.join(missing)}"


def test_every_listed_package_exists():
    folders = package_folders()
    assert not [p for p in setuptools_config()["packages"] if p not in folders]


def test_files_beside_the_code_are_package_data():
    """A non-Python file tracked inside a package folder ships only when package-data names it."""
    import fnmatch
    import subprocess

    cfg = setuptools_config()
    data = cfg.get("package-data", {})
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not tracked:  # not a git checkout (an sdist): nothing to compare against
        return
    folders = sorted(package_folders().items(), key=lambda kv: -len(str(kv[1])))
    unshipped = []
    for rel in tracked:
        path = REPO / rel
        if path.suffix == ".py" or not path.is_file():
            continue
        owner = next(((name, folder) for name, folder in folders if folder in path.parents), None)
        if owner is None:
            continue
        name, folder = owner
        inside = path.relative_to(folder).as_posix()
        if not any(fnmatch.fnmatch(inside, pattern) for pattern in data.get(name, [])):
            unshipped.append(rel)
    assert not unshipped, f"not package data in pyproject.toml: {', '.join(unshipped)}"

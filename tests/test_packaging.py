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
    """A non-Python file tracked inside a package folder ships only when a package-data pattern
    names it (globbed from the package folder, as setuptools globs them)."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False).stdout.split()
    if not tracked:  # not a git checkout (an sdist): nothing to compare against
        return
    data = setuptools_config().get("package-data", {})
    folders = package_folders()
    shipped = {p for name, patterns in data.items() for pattern in patterns for p in folders[name].glob(pattern)}
    unshipped = [rel for rel in tracked
                 if (REPO / rel).suffix != ".py" and (REPO / rel).is_file()
                 and any(f in (REPO / rel).parents for f in folders.values()) and REPO / rel not in shipped]
    assert not unshipped, f"not package data in pyproject.toml: {', '.join(unshipped)}"

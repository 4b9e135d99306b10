"""Import paths are set once, by pyproject.toml: every module is listed there, nothing edits sys.path."""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_and_function_module_is_installed_by_the_project_configuration():
    config = _setuptools()
    packages = {".".join(init.parent.relative_to(ROOT / "src").parts) for init in ROOT.glob("src/*/**/__init__.py")}
    packages |= {".".join(init.parent.relative_to(ROOT).parts) for init in ROOT.glob("infra/**/__init__.py")}
    assert packages == set(config["packages"]), "pyproject.toml's packages must list every package"
    function_modules = {p.stem for p in (ROOT / "src" / "lambda").glob("*.py")}
    assert function_modules == set(config["py-modules"]), "pyproject.toml's py-modules must list src/lambda/*.py"


def test_no_module_edits_sys_path():
    for path in [*ROOT.glob("infra/**/*.py"), *ROOT.glob("src/**/*.py"), *ROOT.glob("tests/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("insert", "append") and \
                    isinstance(node.value, ast.Attribute) and node.value.attr == "path" and \
                    isinstance(node.value.value, ast.Name) and node.value.value.id == "sys":
                # the zip test puts the extracted zip first on purpose, inside a child interpreter's -c text
                raise AssertionError(f"{path.relative_to(ROOT)}:{node.lineno} edits sys.path")


def test_test_modules_have_unique_names():
    # pytest's default (prepend) import mode imports tests/unit/x.py and tests/integration/x.py as the same
    # module `x`, and the whole collection stops with "import file mismatch" on a fresh clone.
    seen: dict[str, Path] = {}
    for path in sorted(ROOT.glob("tests/**/test_*.py")):
        assert path.name not in seen, f"{path.relative_to(ROOT)} and {seen[path.name].relative_to(ROOT)} share a name"
        seen[path.name] = path

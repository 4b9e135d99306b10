"""Import paths are set once, by pyproject.toml: every module is listed there, nothing edits sys.path;
the layers import one way (nothing under src/ imports infra/) and no module imports itself round a cycle."""
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


def _module_names() -> dict[str, Path]:
    """Every module of the project by the name it is imported as (pyproject.toml's mapping): src/lambda's
    files top-level, src/<package>/... and infra/... dotted."""
    modules: dict[str, Path] = {}
    for path in (ROOT / "src" / "lambda").glob("*.py"):
        modules[path.stem] = path
    roots = [(init.parent, init.parent.name) for init in (ROOT / "src").glob("*/__init__.py")]
    roots.append((ROOT / "infra", "infra"))
    for folder, package in roots:
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path) -> set[str]:
    """The dotted names a module imports anywhere in its text (function-local imports too), relative
    imports resolved against its package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)] if package else []
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # `from pkg import submodule`
    return found


def _graph() -> dict[str, set[str]]:
    modules = _module_names()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(name, path):
            # the most specific project module the name refers to (`from a.b import f` -> a.b)
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def test_nothing_under_src_imports_infra():
    # infra/ deploys and operates the pipeline; a running service (the tracker, a function) must not
    # need it, so the layers import one way: src <- infra.
    offenders = []
    for name, path in _module_names().items():
        if not path.is_relative_to(ROOT / "src"):
            continue
        for imported in _imports(name, path):
            if imported.split(".")[0] == "infra":
                offenders.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not offenders, "\n".join(sorted(set(offenders)))


def test_the_project_modules_import_each_other_without_a_cycle():
    # A cycle works only by import order (or a function-local import hiding it) and breaks when
    # someone reorders imports; every project module is checked, function-local imports included.
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_sees_a_function_local_import(tmp_path):
    # GIVEN two modules importing each other, one of them inside a function (as batch_processor and
    # on_failure did) WHEN their imports are read THEN both edges are there.
    (tmp_path / "a.py").write_text("from b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import y\n    return y\n")
    assert "b" in _imports("a", tmp_path / "a.py") and "a" in _imports("b", tmp_path / "b.py")

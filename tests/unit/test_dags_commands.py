"""The daily DAG's tasks run the project's own commands (dags/flightpipe_daily.py imports nothing of the project,
so it parses under any Airflow 3, MWAA's included). Read without Airflow (the main virtualenv has none): each
command it names exists and takes the flags it passes, and its list of silver and gold tables is the one
lakehouse.gold writes. The DAG itself runs in tests/integration/test_dags.py."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from lakehouse.gold import SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "flightpipe_daily.py"


def _tree() -> ast.Module:
    return ast.parse(DAG_FILE.read_text())


def commands() -> list[tuple[str, list[str]]]:
    """(module, [flags]) of every command("module", ...) call in the DAG file."""
    out = []
    for node in ast.walk(_tree()):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "command":
            args = [a.value for a in node.args if isinstance(a, ast.Constant)]
            out.append((args[0], [a for a in args[1:] if a.startswith("--")]))
    return out


def test_silver_and_gold_are_the_tables_lakehouse_gold_writes():
    assign = next(n for n in _tree().body if isinstance(n, ast.Assign) and n.targets[0].id == "SILVER_AND_GOLD")
    assert tuple(ast.literal_eval(assign.value)) == tuple(SCHEMAS)


def test_every_command_exists_and_takes_the_flags_the_dag_passes():
    found = commands()
    assert {m for m, _ in found} == {"infra.lake.maintain", "infra.lake.gold", "lakehouse.quality", "tracker.maintain"}
    for module, flags in found:
        # WHEN the command is asked for its help, as a person would
        helped = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        # THEN it answers, and names every flag the DAG gives it
        assert helped.returncode == 0, helped.stderr
        assert all(flag in helped.stdout for flag in flags), (module, flags)


def test_the_dag_file_imports_nothing_of_the_project():
    project = {"lakehouse", "tracker", "infra", "pipeline_common", "archiver", "producer", "trigger", "flight_domain"}
    for node in ast.walk(_tree()):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert not {n.split(".")[0] for n in names if n} & project, ast.unparse(node)

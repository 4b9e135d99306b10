"""Where the local stack keeps broker data, logs, pid files and PostgreSQL's data (STACK_STATE_DIR),
declared once for infra/stack/servers.py and infra/stack/postgres.py (stack.py imports postgres.py, so the
declaration cannot live in servers.py for both)."""
from __future__ import annotations

from pathlib import Path

from pipeline_common.settings import Setting

ROOT = Path(__file__).resolve().parents[2]

STACK_STATE_DIR = Setting("STACK_STATE_DIR", ".state", flag=None,
                          help="where broker data, logs and pid files live (relative to the project); "
                               "a second stack on other ports runs beside the default one with its own")


def state_dir() -> Path:
    """STACK_STATE_DIR as an absolute path (a relative one is relative to the project)."""
    return (ROOT / STACK_STATE_DIR.read()).resolve()

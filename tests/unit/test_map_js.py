"""The map page's pure JavaScript modules (formatter, aircraft store, reconnect backoff, chart data, alerts,
icon shapes and size by zoom), tested with Node's built-in test runner: tests/unit/js/*.test.mjs."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS_TESTS = ROOT / "tests" / "unit" / "js"


def test_map_page_modules_pass_their_node_tests():
    # GIVEN Node.js (the page itself is tested in real Chromium by tests/integration/test_map_browser.py)
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript unit tests need it (Debian: apt-get install nodejs)")
    # WHEN its test runner runs the module tests
    proc = subprocess.run([node, "--test", str(JS_TESTS)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    # THEN every test passes, and there were tests
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout and "# pass 0" not in proc.stdout, proc.stdout[-2000:]

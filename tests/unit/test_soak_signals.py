"""A soak started in the background (SIGINT ignored by the shell) can still stop its printers with Ctrl-C."""
import signal
import subprocess
import sys

CHILD = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
SOAK = ("import subprocess, sys; from infra.soak.__main__ import interruptible; interruptible(); "
        f"subprocess.run([sys.executable, '-c', {CHILD!r}])")


def ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_a_child_of_a_soak_started_with_sigint_ignored_turns_ctrl_c_into_keyboardinterrupt():
    # GIVEN a soak process started as a background shell job starts it (SIGINT ignored)
    without = subprocess.run([sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}])"],
                             preexec_fn=ignore_sigint, capture_output=True, text=True, check=True)
    with_fix = subprocess.run([sys.executable, "-c", SOAK], preexec_fn=ignore_sigint, capture_output=True, text=True,
                              check=True)
    # THEN without the soak's fix its child ignores Ctrl-C, and with it the child gets KeyboardInterrupt
    assert without.stdout.strip() == "False"
    assert with_fix.stdout.strip() == "True"


def test_sigterm_runs_the_soaks_clean_up_as_ctrl_c_does(tmp_path):
    # GIVEN a soak that is stopped with SIGTERM (kill, a CI timeout) while it runs
    marker = tmp_path / "cleaned"
    code = ("import os, signal, time; from infra.soak.__main__ import interruptible; interruptible()\n"
            "try:\n    os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)\n"
            f"finally:\n    open({str(marker)!r}, 'w').write('yes')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    # THEN its finally blocks ran (parts and stack stopped) and it ended as an interrupted run
    assert marker.read_text() == "yes"
    assert "KeyboardInterrupt" in proc.stderr

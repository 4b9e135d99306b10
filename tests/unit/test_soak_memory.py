"""How the soak measures memory: VmRSS of one process, anonymous memory (Pss_Anon) summed over a group."""
import os
import subprocess
import sys
from pathlib import Path

from infra.soak import sampler


def status_kb(pid: int, key: str) -> int:
    line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith(key + ":"))
    return int(line.split()[1])


def test_one_process_is_its_resident_memory():
    rss_mb = sampler.memory_mb([os.getpid()])
    assert abs(rss_mb - status_kb(os.getpid(), "VmRSS") / 1024) < 16


def test_a_group_counts_anonymous_memory_only_and_grows_with_a_members_heap():
    # GIVEN a child that has allocated 64 MB of heap, measured as a group of one
    child = subprocess.Popen([sys.executable, "-c", "import sys,time; b=bytearray(64<<20); print(1, flush=True); "
                                                    "time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()
        group = sampler.memory_mb([child.pid], group=True)
        # THEN its heap is counted, and its shared libraries' file pages are not (RSS is larger)
        assert group >= 64
        assert group < status_kb(child.pid, "VmRSS") / 1024
        # AND a group measure of a process that is gone is None
    finally:
        child.kill()
        child.wait()
    assert sampler.memory_mb([child.pid], group=True) is None


def test_children_and_parent_sources_are_groups():
    read = lambda: os.getpid()  # noqa: E731
    assert sampler.with_children(read).group and sampler.children_source(read).group
    assert not getattr(sampler.pid_file_source(read), "group", False)

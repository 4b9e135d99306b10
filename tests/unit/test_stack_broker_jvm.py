"""The broker's JVM options that keep its memory from creeping up (make soak's memory gate)."""
import shutil

import pytest

from infra.stack import servers as stack

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="no Java on this machine")


def test_the_broker_pre_touches_its_heap_and_trims_its_native_heap_when_this_java_can():
    cmd = stack._java_cmd(stack.StackConfig.from_env({}), "kafka.Kafka")
    # the whole heap committed and resident from the start: it cannot grow while the broker runs
    assert "-XX:+AlwaysPreTouch" in cmd and "-Xms768m" in cmd and "-Xmx768m" in cmd
    # the trim option only where this Java knows it (17.0.9+), so an older Java still starts the broker
    assert (stack.TRIM_NATIVE_HEAP in cmd) == stack._java_accepts(cmd[0], stack.TRIM_NATIVE_HEAP)


def test_an_option_this_java_does_not_know_is_refused():
    assert not stack._java_accepts(shutil.which("java"), "-XX:NoSuchOptionAnywhere=1")
    assert stack._java_accepts(shutil.which("java"), "-XX:+AlwaysPreTouch")


def test_the_storage_tool_gets_a_small_heap_and_no_pre_touch():
    cmd = stack._java_cmd(stack.StackConfig.from_env({}), "kafka.tools.StorageTool", "format", server=False)
    assert "-Xmx256m" in cmd and "-XX:+AlwaysPreTouch" not in cmd and not any(a.startswith("-Xms") for a in cmd)

"""What a benchmark ran on: cores, memory, CPU model, kernel, and the versions of every part."""
from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
JAR_DIR = ROOT / ".cache" / "kafka" / "lib"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def kafka_version(jar_dir: Path = JAR_DIR) -> str:
    """The broker's version, from the kafka-server jar the native stack runs."""
    for jar in sorted(jar_dir.glob("kafka-server-*.jar")):
        match = re.fullmatch(r"kafka-server-(\d[\w.\-]*)\.jar", jar.name)
        if match:
            return match.group(1)
    for jar in sorted(jar_dir.glob("kafka_*.jar")):  # older layouts: kafka_2.13-<version>.jar
        match = re.fullmatch(r"kafka_[\d.]+-(\d[\w.\-]*)\.jar", jar.name)
        if match:
            return match.group(1)
    return "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict:
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib(), 1),
        "cpu_model": cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "versions": {
            "Kafka broker": kafka_version(),
            "Python": platform.python_version(),
            "kafka-python": package_version("kafka-python"),
            "ministack": package_version("ministack"),
            "boto3": package_version("boto3"),
            "botocore": package_version("botocore"),
            "crc32c": package_version("crc32c"),
        },
        "python_executable": sys.executable,
    }


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)

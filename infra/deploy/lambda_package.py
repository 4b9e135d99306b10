"""Builds the function's deployment zip reproducibly: the same source always gives the same bytes.

Files of src/lambda/ go at the zip root, and beside them as packages (BUNDLED) the standard-library
modules of pipeline_common and all of flight_domain (the rules and geometry the tracker shares);
entries in sorted order, each stamped 1980-01-01 00:00:00 with mode 0644 and "made by" Unix,
deflated at level 9; caches, tests and hidden files stay out. Third-party packages the runtime lacks
(the Protobuf runtime) are unpacked at the zip root from wheels built for the deployed runtime's
platform (WHEELS: manylinux x86_64, Python 3.12), pinned by sha256 and cached in .cache/lambda-wheels
by `make setup`, so the same zip deploys unchanged to AWS. boto3 is in the Lambda runtime.

  python -m infra.deploy.lambda_package [--src src/lambda] [--out build/lambda/flight-processor.zip]
prints the zip's path, size and sha256 (and Lambda's CodeSha256, the base64 form of the same digest).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SRC = ROOT / "src" / "lambda"
DEFAULT_OUT = ROOT / "build" / "lambda" / "flight-processor.zip"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can store
FILE_MODE = 0o100644                # regular file, rw-r--r--
SO_MODE = 0o100755                  # shared library, rwxr-xr-x

# Code from outside src/lambda that the functions import: zip folder -> (source folder, files).
# Only modules whose imports the Lambda runtime has (the standard library, boto3/botocore, WHEELS)
# belong here; another package is one more entry.
BUNDLED: dict[str, tuple[Path, tuple[str, ...]]] = {
    "pipeline_common": (ROOT / "src" / "pipeline_common",
                        ("__init__.py", "backoff.py", "logs.py", "opensky_state_pb2.py", "settings.py",
                         "shared_settings.py", "state_codec.py")),
    "flight_domain": (ROOT / "src" / "flight_domain",
                      ("__init__.py", "alert_declarations.py", "alert_rules.py", "flight_transform.py", "geofence.py",
                       "geofence_source.py")),
}

# Wheels unpacked at the zip root, for Lambda's python3.12 on x86_64: file name -> sha256. The
# Protobuf runtime decodes PRODUCER_FORMAT=protobuf records; its abi3 wheel serves Python 3.10+,
# so a later python3.x runtime takes the same zip. Keep the version equal to pyproject's pin.
LAMBDA_PLATFORM = "manylinux2014_x86_64"
LAMBDA_PYTHON = "3.12"
WHEELS: dict[str, str] = {
    "protobuf-7.36.2-cp310-abi3-manylinux2014_x86_64.whl":
        "89f23aa53c24553a2416fd4fd1ec06f74fa42b14b546d8883128813f775bbfd2",
}
WHEEL_CACHE = ROOT / ".cache" / "lambda-wheels"

_EXCLUDED_DIRS = {"__pycache__", "tests", "test", ".pytest_cache", ".hypothesis", ".mypy_cache"}
_EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".zip"}


def source_files(src: Path = DEFAULT_SRC) -> list[Path]:
    """Files that belong in the zip, as paths relative to src, in the order they are written."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"Lambda source folder {src} does not exist")
    files = []
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        # *.egg-info: the editable install's metadata lands in src/lambda (pyproject.toml maps it as a source root)
        if not path.is_file() or any(part in _EXCLUDED_DIRS or part.startswith(".") or part.endswith(".egg-info")
                                     for part in rel.parts):
            continue
        if path.suffix in _EXCLUDED_SUFFIXES or rel.name.startswith("test_") or rel.name == "conftest.py":
            continue
        files.append(rel)
    if not any(rel.as_posix() == "flight_handler.py" for rel in files):
        raise FileNotFoundError(f"{src} has no flight_handler.py")
    return sorted(files, key=lambda rel: rel.as_posix())


def zip_entries(src: Path = DEFAULT_SRC) -> list[tuple[str, Path]]:
    """(name in the zip, file on disk) for everything the zip holds, sorted by name."""
    src = Path(src)
    entries = [(rel.as_posix(), src / rel) for rel in source_files(src)]
    for folder, (origin, names) in BUNDLED.items():
        entries += [(f"{folder}/{name}", origin / name) for name in names]
    return sorted(entries)


def fetch_wheels(cache: Path = WHEEL_CACHE) -> list[Path]:
    """The pinned wheels, downloaded with pip for the Lambda platform when not cached; each checked
    against its sha256 (a mismatch is deleted and refused, never packaged)."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, digest in sorted(WHEELS.items()):
        path = cache / name
        if not path.is_file():
            project, version = name.split("-")[:2]
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--only-binary=:all:", "--no-deps", "--platform", LAMBDA_PLATFORM, "--python-version",
                   LAMBDA_PYTHON, "--implementation", "cp", "--dest", str(cache), f"{project}=={version}"]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0 or not path.is_file():
                raise FileNotFoundError(f"could not download {name} for the Lambda zip (needs PyPI once; "
                                        f"then cached in {cache}): {result.stderr.strip()[-300:]}")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != digest:
            path.unlink()
            raise FileNotFoundError(f"{name} has sha256 {actual}, not the pinned {digest}: deleted, not packaged")
        paths.append(path)
    return paths


def wheel_members(cache: Path = WHEEL_CACHE) -> list[tuple[str, bytes]]:
    """(name in the zip, bytes) of every file of the pinned wheels."""
    members = []
    for wheel in fetch_wheels(cache):
        with zipfile.ZipFile(wheel) as archive:
            members += [(info.filename, archive.read(info)) for info in archive.infolist() if not info.is_dir()]
    return members


def build_zip_bytes(src: Path = DEFAULT_SRC) -> bytes:
    """The zip, in memory."""
    members = [(name, path.read_bytes()) for name, path in zip_entries(src)] + wheel_members()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in sorted(members):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so external_attr means the same on every build host
            # Shared libraries keep an executable mode, as pip installs them.
            info.external_attr = (SO_MODE if name.endswith(".so") else FILE_MODE) << 16
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lambda_code_sha256(data: bytes) -> str:
    """The digest as Lambda reports it in CodeSha256 (base64, not hex)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def build_zip(src: Path = DEFAULT_SRC, out: Path = DEFAULT_OUT) -> tuple[Path, str]:
    """Write the zip to out; return (path, sha256 hex)."""
    data = build_zip_bytes(src)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out, sha256_hex(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder whose files go at the zip root")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the zip")
    parser.add_argument("--fetch-wheels", action="store_true",
                        help="only download and check the pinned wheels (make setup does this)")
    args = parser.parse_args(argv)
    if args.fetch_wheels:
        try:
            for path in fetch_wheels():
                print(f"{path.relative_to(ROOT)}  sha256 ok")
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        path, digest = build_zip(args.src, args.out)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        count = len(archive.infolist())
    print(f"{path}  {len(data)} bytes  {count} files")
    print(f"sha256 {digest}")
    print(f"CodeSha256 {lambda_code_sha256(data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

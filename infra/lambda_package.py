"""Builds the function's deployment zip reproducibly: the same source always gives the same bytes.

Files of src/lambda/ go at the zip root, and the standard-library modules of pipeline_common as the
package pipeline_common/ beside them (BUNDLED); entries in sorted order, each stamped 1980-01-01
00:00:00 with mode 0644 and "made by" Unix, deflated at level 9; caches, tests and hidden files stay
out. Nothing else is needed at runtime (boto3 is in the Lambda runtime).

  python -m infra.lambda_package [--src src/lambda] [--out build/lambda/flight-processor.zip]
prints the zip's path, size and sha256 (and Lambda's CodeSha256, the base64 form of the same digest).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SRC = ROOT / "src" / "lambda"
DEFAULT_OUT = ROOT / "build" / "lambda" / "flight-processor.zip"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can store
FILE_MODE = 0o100644                # regular file, rw-r--r--

# Code from outside src/lambda that the function imports: zip folder -> (source folder, files).
# Only standard-library modules belong here; another package is one more entry.
BUNDLED: dict[str, tuple[Path, tuple[str, ...]]] = {
    "pipeline_common": (ROOT / "src" / "pipeline_common",
                        ("__init__.py", "logs.py", "settings.py", "shared_settings.py")),
}

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
    if not any(rel.as_posix() == "handler.py" for rel in files):
        raise FileNotFoundError(f"{src} has no handler.py")
    return sorted(files, key=lambda rel: rel.as_posix())


def zip_entries(src: Path = DEFAULT_SRC) -> list[tuple[str, Path]]:
    """(name in the zip, file on disk) for everything the zip holds, sorted by name."""
    src = Path(src)
    entries = [(rel.as_posix(), src / rel) for rel in source_files(src)]
    for folder, (origin, names) in BUNDLED.items():
        entries += [(f"{folder}/{name}", origin / name) for name in names]
    return sorted(entries)


def build_zip_bytes(src: Path = DEFAULT_SRC) -> bytes:
    """The zip, in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, path in zip_entries(src):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so external_attr means the same on every build host
            info.external_attr = FILE_MODE << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
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
    args = parser.parse_args(argv)
    try:
        path, digest = build_zip(args.src, args.out)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = path.read_bytes()
    print(f"{path}  {len(data)} bytes  {len(zip_entries(args.src))} files")
    print(f"sha256 {digest}")
    print(f"CodeSha256 {lambda_code_sha256(data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

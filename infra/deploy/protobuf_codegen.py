"""Compiles the Protobuf schema of a Kafka state record into Python (grpcio-tools' bundled protoc).

    python -m infra.deploy.protobuf_codegen           write src/pipeline_common/opensky_state_pb2.py (make setup)
    python -m infra.deploy.protobuf_codegen --check   exit 1 when the committed file differs from a fresh compile

The generated module is committed so a fresh checkout imports it without a build step; the check
(also a unit test) keeps it equal to what the pinned compiler makes of the .proto.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "src" / "pipeline_common"
PROTO = PROTO_DIR / "opensky_state.proto"
GENERATED = PROTO_DIR / "opensky_state_pb2.py"


def compile_proto(out_dir: Path) -> Path:
    """Run protoc on the schema into out_dir; return the generated file."""
    from grpc_tools import protoc  # a dev dependency: only set-up and the check need the compiler

    code = protoc.main(["grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", str(PROTO)])
    if code != 0:
        raise RuntimeError(f"protoc failed on {PROTO.relative_to(ROOT)} (exit {code})")
    return Path(out_dir) / GENERATED.name


def fresh_output() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return compile_proto(Path(tmp)).read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    fresh = fresh_output()
    if args.check:
        if not GENERATED.is_file() or GENERATED.read_bytes() != fresh:
            print(f"{GENERATED.relative_to(ROOT)} is not what {PROTO.relative_to(ROOT)} compiles to: "
                  "run `python -m infra.deploy.protobuf_codegen` and commit it", file=sys.stderr)
            return 1
        return 0
    if not GENERATED.is_file() or GENERATED.read_bytes() != fresh:
        GENERATED.write_bytes(fresh)
        print(f"wrote {GENERATED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The deployment zip is reproducible and holds the function's own source at the zip root, the
pipeline_common modules it imports, and the pinned Protobuf runtime for Lambda's platform."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.deploy import lambda_package

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def src_copy(tmp_path) -> Path:
    src = tmp_path / "lambda"
    shutil.copytree(ROOT / "src" / "lambda", src, ignore=shutil.ignore_patterns("__pycache__"))
    return src


def test_same_source_gives_byte_identical_zip_whatever_the_file_times_and_modes(src_copy):
    first = lambda_package.build_zip_bytes(src_copy)
    for i, path in enumerate(sorted(src_copy.iterdir())):  # touch every file: new mtimes, other modes
        os.utime(path, (1_900_000_000 + i, 1_900_000_000 + i))
        path.chmod(0o755 if i % 2 else 0o600)
    assert lambda_package.build_zip_bytes(src_copy) == first


def test_zip_has_sorted_root_level_python_files_with_fixed_metadata(src_copy):
    (src_copy / "__pycache__").mkdir(exist_ok=True)
    (src_copy / "__pycache__" / "flight_handler.cpython-311.pyc").write_bytes(b"junk")
    (src_copy / "tests").mkdir()
    (src_copy / "tests" / "test_x.py").write_text("x = 1\n")
    (src_copy / "test_local.py").write_text("x = 1\n")
    (src_copy / ".env").write_text("SECRET=1\n")
    (src_copy / "flightpipe.egg-info").mkdir(exist_ok=True)
    (src_copy / "flightpipe.egg-info" / "PKG-INFO").write_text("Name: flightpipe\n")
    with zipfile.ZipFile(io.BytesIO(lambda_package.build_zip_bytes(src_copy))) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names)
        vendored = ("google/", "protobuf-")
        own = [n for n in names if not n.startswith(("pipeline_common/", "flight_domain/", *vendored))]
        assert "flight_handler.py" in own and "/" not in "".join(own)
        assert not any(n.endswith(".pyc") or n.startswith(("tests", "test_", ".", "flightpipe.egg-info")) for n in names)
        assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {info.external_attr >> 16 for info in infos if not info.filename.endswith(".so")} == {0o100644}
        assert archive.read("flight_handler.py") == (src_copy / "flight_handler.py").read_bytes()


def test_zip_needs_nothing_but_boto3_and_the_standard_library(src_copy, tmp_path):
    import ast
    with zipfile.ZipFile(io.BytesIO(lambda_package.build_zip_bytes(src_copy))) as archive:
        archive.extractall(tmp_path / "zip")
    root = tmp_path / "zip"
    own = {p.stem for p in root.glob("*.py")}
    allowed = (set(sys.stdlib_module_names) | {"boto3", "botocore", "pipeline_common", "flight_domain", "__future__"}
               | own | {"google"})  # the vendored Protobuf runtime, itself checked below
    for path in [*root.glob("*.py"), *(root / "pipeline_common").glob("*.py"), *(root / "flight_domain").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.relative_to(root)} imports {roots - allowed}"
    # and no module name shadows something importable elsewhere (e.g. config, utils, a stdlib module)
    assert not own & set(sys.stdlib_module_names)
    assert not own & {"config", "utils", "helpers", "settings", "pipeline_common", "flight_domain", "producer", "trigger"}


def test_the_zip_ships_every_module_of_flight_domain():
    """The functions and the tracker share flight_domain: a module added there and not to BUNDLED would
    work in every test that imports the source tree and fail only once deployed."""
    shipped = set(lambda_package.BUNDLED["flight_domain"][1])
    assert shipped == {p.name for p in (lambda_package.ROOT / "src" / "flight_domain").glob("*.py")}


def test_the_function_runs_on_the_pipeline_common_inside_its_zip(src_copy, tmp_path):
    """GIVEN the extracted zip WHEN the handler is imported from it THEN its settings and logging come
    from the zip's own pipeline_common package (one copy of that code, not a second one to drift)."""
    with zipfile.ZipFile(io.BytesIO(lambda_package.build_zip_bytes(src_copy))) as archive:
        archive.extractall(tmp_path / "zip")
    probe = ("import sys; sys.path.insert(0, '.'); import flight_handler, pipeline_common.settings as s; "
             "print(s.__file__); print(flight_handler.FunctionSettings.from_env({'SNS_TOPIC_ARN': "
             "'arn:aws:sns:us-east-1:123456789012:T'}).publish_concurrency)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path / "zip", capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert Path(out[0]).resolve() == (tmp_path / "zip" / "pipeline_common" / "settings.py").resolve()
    assert out[1] == "8"


def test_the_alerts_function_runs_on_the_flight_domain_inside_its_zip(src_copy, tmp_path):
    """GIVEN the extracted zip WHEN the alerts handler is imported from it THEN its rules and geometry
    come from the zip's own flight_domain package."""
    with zipfile.ZipFile(io.BytesIO(lambda_package.build_zip_bytes(src_copy))) as archive:
        archive.extractall(tmp_path / "zip")
    probe = ("import sys; sys.path.insert(0, '.'); import alerts_handler, flight_domain.alert_rules as r; "
             "print(r.__file__); print(alerts_handler.observe is r.observe)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path / "zip", capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert Path(out[0]).resolve() == (tmp_path / "zip" / "flight_domain" / "alert_rules.py").resolve()
    assert out[1] == "True"


def test_cli_writes_the_zip_and_prints_its_sha256(tmp_path):
    out = tmp_path / "fn.zip"
    proc = subprocess.run([sys.executable, "-m", "infra.deploy.lambda_package", "--out", str(out)],
                          capture_output=True, text=True, timeout=60, check=True)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in proc.stdout
    again = subprocess.run([sys.executable, "-m", "infra.deploy.lambda_package", "--out", str(out)],
                           capture_output=True, text=True, timeout=60, check=True)
    assert again.stdout == proc.stdout


def test_missing_source_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lambda_package.build_zip_bytes(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no flight_handler.py"):
        lambda_package.build_zip_bytes(tmp_path / "empty")


def test_the_zip_carries_the_protobuf_runtime_for_lambdas_platform_and_decodes_with_it(src_copy, tmp_path):
    """GIVEN the extracted zip and an interpreter that sees nothing else (no site-packages)
    WHEN a Protobuf record is decoded THEN it is the zip's own Protobuf runtime that does it, the
    manylinux x86_64 build for Lambda's python3.x (abi3), so the zip deploys unchanged to AWS."""
    with zipfile.ZipFile(io.BytesIO(lambda_package.build_zip_bytes(src_copy))) as archive:
        archive.extractall(tmp_path / "zip")
        wheel_tag = archive.read("protobuf-7.36.2.dist-info/WHEEL").decode()
    assert "Tag: cp310-abi3-manylinux2014_x86_64" in wheel_tag
    assert list((tmp_path / "zip" / "google" / "_upb").glob("_message.abi3.so"))
    probe = ("import sys; sys.path[:0] = ['.']; import base64, google.protobuf, kafka_esm; "
             "from pipeline_common.state_codec import PROTOBUF, encode_state; "
             "v = base64.b64encode(encode_state({'icao24': '3c6444', 'origin_country': 'Germany', "
             "'last_contact': 1, 'category': 6}, PROTOBUF)).decode(); "
             "ev = {'eventSource': 'SelfManagedKafka', 'records': {'t-0': [{'topic': 't', 'partition': 0, "
             "'offset': 3, 'value': v, 'headers': [{'content-type': list(PROTOBUF.encode())}]}]}}; "
             "r = kafka_esm.read_event(ev)[0]; print(google.protobuf.__file__); print(r.state['category'], r.error)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], cwd=tmp_path / "zip", capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    where, decoded = out.stdout.splitlines()
    assert Path(where).resolve().is_relative_to((tmp_path / "zip").resolve())
    assert decoded == "6 None"


def test_a_wheel_that_does_not_match_its_pinned_digest_is_refused(tmp_path, monkeypatch):
    name = next(iter(lambda_package.WHEELS))
    (tmp_path / name).write_bytes(b"not the real wheel")
    with pytest.raises(FileNotFoundError, match="not the pinned"):
        lambda_package.fetch_wheels(tmp_path)
    assert not (tmp_path / name).exists()

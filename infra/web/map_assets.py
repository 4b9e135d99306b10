"""Set-up for the tracker's map page: the pinned browser libraries, the land outlines and the headless
browser for its tests.

    python -m infra.web.map_assets fetch      resolve infra/web/pom.xml (Leaflet WebJar) into .cache/web, and the
                                          pinned npm package world-atlas (Natural Earth) into
                                          .cache/web/world-atlas as GeoJSON (both cached)
    python -m infra.web.map_assets browser    install Debian's chromium + chromium-driver when missing

The tracker serves .cache/web/<name>/ at /vendor/<name>/ (see tracker/api/web.py).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from infra import progress
from infra.stack.servers import StackError, resolve_pom, say

ROOT = Path(__file__).resolve().parents[2]

POM = ROOT / "infra" / "web" / "pom.xml"
VENDOR_DIR = ROOT / ".cache" / "web"
JAR_DIR = VENDOR_DIR / "jars"
STAMP = VENDOR_DIR / ".pom-sha256"
# WebJar artifactId -> the folder inside the jar that the page loads (npm WebJars ship the npm package as is).
WEBJARS = {"leaflet": "dist"}

# The offline map's land: Natural Earth 1:110m countries, as TopoJSON in the npm package world-atlas (no
# WebJar of it on Maven Central). Pinned by version and by the registry's sha512 integrity, which the
# downloaded tarball must match; converted to GeoJSON here so the page needs no TopoJSON library.
LAND_PACKAGE = "world-atlas"
LAND_VERSION = "2.0.2"
LAND_INTEGRITY = "sha512-IXfV0qwlKXpckz1FhwXVwKRjiIhOnWttOskm5CtxMsjgE/MXAYRHWJqgXOpM8IkcPBoXnyTU5lFHcYa5ChG0LQ=="
LAND_SOURCE = "countries-110m.json"
LAND_OBJECT = "countries"
LAND_DIR = VENDOR_DIR / LAND_PACKAGE
LAND_FILE = LAND_DIR / "countries-110m.geojson"
LAND_STAMP = LAND_DIR / ".integrity"
# 3 decimals is ~110 m: finer than the 1:110m data itself (its quantisation step is 0.0036 degrees).
LAND_DECIMALS = 3

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
APT_PACKAGES = ("chromium", "chromium-driver")
# Headless, and nothing that phones home: the tests and the bench reach only 127.0.0.1.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def unpack_webjar(jar: Path, name: str, subdir: str, dest: Path) -> Path:
    """Extract META-INF/resources/webjars/<name>/<version>/<subdir>/ from `jar` into dest/<name>/."""
    target = dest / name
    if target.exists():
        shutil.rmtree(target)
    with zipfile.ZipFile(jar) as zf:
        prefix = None
        for member in zf.namelist():
            parts = member.split("/")
            # META-INF/resources/webjars/<name>/<version>/<subdir>/...
            if len(parts) > 6 and parts[:4] == ["META-INF", "resources", "webjars", name] and parts[5] == subdir:
                prefix = "/".join(parts[:6]) + "/"
                break
        if prefix is None:
            raise StackError(f"{jar.name} has no webjars/{name}/<version>/{subdir}/ folder; is the pom pinned "
                             "to an npm WebJar?")
        for member in zf.namelist():
            if member.startswith(prefix) and not member.endswith("/"):
                out = target / member[len(prefix):]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(member))
    return target


def fetch_webjars() -> Path:
    """Resolve and unpack the pinned WebJars once; later calls need no network."""
    if STAMP.exists() and STAMP.read_text().strip() == _pom_digest() \
            and all((VENDOR_DIR / name).is_dir() for name in WEBJARS):
        return VENDOR_DIR
    jars = resolve_pom(POM, JAR_DIR, "map page libraries (WebJars)")
    for name, subdir in WEBJARS.items():
        jar = next((j for j in jars if j.name.startswith(f"{name}-")), None)
        if jar is None:
            raise StackError(f"Maven resolved no {name} WebJar from {POM.relative_to(ROOT)}")
        target = unpack_webjar(jar, name, subdir, VENDOR_DIR)
        say(f"{jar.stem} unpacked into {target.relative_to(ROOT)} (served at /vendor/{name}/)")
    STAMP.write_text(_pom_digest())
    return VENDOR_DIR


def topojson_to_geojson(topology: dict, name: str, decimals: int = LAND_DECIMALS) -> dict:
    """The GeometryCollection `name` of a TopoJSON topology as a GeoJSON FeatureCollection.

    Arcs are delta-encoded and quantised when the topology has a transform; a negative arc index ~i means
    arc i reversed; consecutive arcs of a ring share their joining point, kept once.
    """
    transform = topology.get("transform")
    (sx, sy), (tx, ty) = (transform["scale"], transform["translate"]) if transform else ((1, 1), (0, 0))
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for px, py in (p[:2] for p in arc):
            if transform:
                x, y = x + px, y + py
                px, py = x * sx + tx, y * sy + ty
            points.append([round(px, decimals), round(py, decimals)])
        arcs.append(points)

    def ring(indexes: list[int]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in indexes:
            points = arcs[i] if i >= 0 else arcs[~i][::-1]
            for point in points[1:] if out else points:
                if not out or point != out[-1]:  # rounding can merge neighbours: no zero-length segments
                    out.append(point)
        return continuous_ring(out)

    features = []
    for geometry in topology["objects"][name]["geometries"]:
        kind = geometry.get("type")
        if kind == "Polygon":
            coordinates = [ring(r) for r in geometry["arcs"]]
        elif kind == "MultiPolygon":
            coordinates = [[ring(r) for r in polygon] for polygon in geometry["arcs"]]
        elif kind is None:
            continue  # a feature without geometry draws nothing
        else:
            raise StackError(f"TopoJSON object {name!r} has a {kind} geometry; only (Multi)Polygons are expected")
        features.append({"type": "Feature", "id": geometry.get("id"), "properties": geometry.get("properties", {}),
                         "geometry": {"type": kind, "coordinates": coordinates}})
    return {"type": "FeatureCollection", "features": features}


def continuous_ring(ring: list[list[float]]) -> list[list[float]]:
    """A ring that crosses the antimeridian (Fiji, Chukotka) with longitudes past +-180 instead of a jump.

    The data is made for spherical rendering, where a step from 179.4 to -180 is a short one; on a flat
    map it is a band across the whole world. A ring around a pole (Antarctica) does not come back to its
    start once unwrapped: it is kept as it is, its jump is then the map's bottom edge.
    """
    out = [list(ring[0])] if ring else []
    shift = 0.0
    for (lon0, _), (lon, lat) in zip(ring, ring[1:]):
        if lon - lon0 > 180:
            shift -= 360
        elif lon0 - lon > 180:
            shift += 360
        out.append([lon + shift, lat])
    return out if shift == 0 else ring


def _sri_matches(data: bytes, integrity: str) -> bool:
    algorithm, _, expected = integrity.partition("-")
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == expected


def fetch_land() -> Path:
    """Download the pinned world-atlas with npm once, check its integrity, write the land as GeoJSON."""
    if LAND_FILE.exists() and LAND_STAMP.exists() and LAND_STAMP.read_text().strip() == LAND_INTEGRITY:
        return LAND_FILE
    npm = shutil.which("npm")
    if npm is None:
        raise StackError(f"npm is not installed; it fetches the map's land outlines ({LAND_PACKAGE}@{LAND_VERSION}). "
                         "Install it (Debian: apt-get install npm) and run `make setup` again.")
    spec = f"{LAND_PACKAGE}@{LAND_VERSION}"
    say(f"fetching {spec} (Natural Earth land outlines) with npm (first run only)")
    with tempfile.TemporaryDirectory() as tmp:
        # `npm pack` only downloads the tarball: nothing is installed and no package script runs.
        proc = subprocess.run([npm, "pack", spec, "--ignore-scripts", "--json", "--pack-destination", tmp],
                              cwd=tmp, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
            raise StackError(f"npm could not fetch {spec} (is the npm registry reachable? a proxy in ~/.npmrc?). "
                             f"npm said:\n{tail}")
        tarball = Path(tmp) / json.loads(proc.stdout)[0]["filename"]
        data = tarball.read_bytes()
        if not _sri_matches(data, LAND_INTEGRITY):
            raise StackError(f"{tarball.name} does not match the pinned integrity {LAND_INTEGRITY[:20]}...: "
                             "refusing it")
        with tarfile.open(tarball) as tf:
            topology = json.load(tf.extractfile(f"package/{LAND_SOURCE}"))
            licence = tf.extractfile("package/LICENSE").read()
    geojson = topojson_to_geojson(topology, LAND_OBJECT)
    if LAND_DIR.exists():
        shutil.rmtree(LAND_DIR)
    LAND_DIR.mkdir(parents=True)
    LAND_FILE.write_text(json.dumps(geojson, separators=(",", ":")))
    (LAND_DIR / "LICENSE").write_bytes(licence)
    LAND_STAMP.write_text(LAND_INTEGRITY)
    say(f"{len(geojson['features'])} countries ({LAND_FILE.stat().st_size // 1024} KB GeoJSON) written to "
        f"{LAND_FILE.relative_to(ROOT)} (served at /vendor/{LAND_PACKAGE}/)")
    return LAND_FILE


def browser_missing() -> list[str]:
    return [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]


def ensure_browser() -> bool:
    """Install Debian's Chromium when missing and we are root; otherwise say the exact command.

    Returns False only when the browser is still missing (the browser tests then fail in CI, skip elsewhere).
    """
    missing = browser_missing()
    if not missing:
        return True
    # DPkg::Lock::Timeout: on a shared machine another apt-get may hold the lock for a while.
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-o", "Acquire::Retries=3"]
    if os.geteuid() != 0:
        say(f"headless Chromium for the browser tests is missing ({', '.join(missing)}); install it with:\n"
            f"    sudo apt-get update && sudo apt-get install -y --no-install-recommends {' '.join(APT_PACKAGES)}")
        return False
    say(f"installing Debian's {' and '.join(APT_PACKAGES)} for the browser tests (first run only)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (apt + ["update", "-q"],
                 apt + ["install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]):
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
            raise StackError(f"`{' '.join(argv)}` failed:\n{tail}")
    still = browser_missing()
    if still:
        raise StackError(f"apt-get installed {' '.join(APT_PACKAGES)} but {', '.join(still)} is still missing")
    return True


def launch_chromium(playwright):
    """Debian's Chromium driven by Playwright (which never downloads a browser of its own here)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_FLAGS), headless=True)


def local_only(page) -> None:
    """Abort every request that would leave this machine (map tiles, fonts): pages under test stay offline."""
    from urllib.parse import urlsplit

    def route(r):
        host = urlsplit(r.request.url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            r.continue_()
        else:
            r.abort("internetdisconnected")

    page.route("**/*", route)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.web.map_assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "browser"])
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            fetch_webjars()
            fetch_land()
        else:
            ensure_browser()
    except StackError as exc:
        progress.say(f"error: {exc}", "[stack]", stderr=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

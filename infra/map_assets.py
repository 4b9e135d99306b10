"""Set-up for the tracker's map page: the pinned browser libraries and the headless browser for its tests.

    python -m infra.map_assets fetch      resolve infra/web/pom.xml (Leaflet WebJar) into .cache/web (cached)
    python -m infra.map_assets browser    install Debian's chromium + chromium-driver when missing

The tracker serves .cache/web/<name>/ at /vendor/<name>/ (see tracker/api/web.py).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from infra.stack import StackError, resolve_pom, say

ROOT = Path(__file__).resolve().parent.parent

POM = ROOT / "infra" / "web" / "pom.xml"
VENDOR_DIR = ROOT / ".cache" / "web"
JAR_DIR = VENDOR_DIR / "jars"
STAMP = VENDOR_DIR / ".pom-sha256"
# WebJar artifactId -> the folder inside the jar that the page loads (npm WebJars ship the npm package as is).
WEBJARS = {"leaflet": "dist"}

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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "browser"])
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            fetch_webjars()
        else:
            ensure_browser()
    except StackError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

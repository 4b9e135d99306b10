"""Serves the map and stats pages (src/tracker/web/) at "/" and the pinned browser libraries that
`make setup` unpacked into .cache/web/ (infra/web/pom.xml) at /vendor/<name>/."""
from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# src/tracker/api/web.py -> the checkout's .cache/web (the project runs from its checkout, `pip install -e`).
VENDOR_DIR = Path(__file__).resolve().parents[3] / ".cache" / "web"
VENDOR_LIBRARIES = ("leaflet", "world-atlas")  # world-atlas: the offline land outlines (infra/web/map_assets.py)


def mount_web(app: FastAPI, web_dir: Path = WEB_DIR, vendor_dir: Path = VENDOR_DIR) -> None:
    """Mount the vendor libraries and the pages. Call it after every API router is included:
    the mount at "/" matches every path, so anything added after it would be shadowed."""
    for name in VENDOR_LIBRARIES:
        folder = vendor_dir / name
        if folder.is_dir():
            app.mount(f"/vendor/{name}", StaticFiles(directory=folder), name=f"vendor-{name}")
        else:
            logger.warning("%s is missing, so the map page cannot load %s: run `make setup`", folder, name)
    app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")

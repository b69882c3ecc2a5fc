"""The dashboard: a static single-page app at `/ui`, shipped in the package.

Plain HTML, CSS and JavaScript modules in `static/`, with no build step and nothing loaded
from elsewhere. The page holds no data of its own: the user pastes an API token and every
read and answer goes through the session API with it, so the dashboard can never see or
do more than the token may. Serving the files needs no token; they hold no secrets.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PATH = "/ui"


def mount(app: FastAPI) -> None:
    """Serve the dashboard at `/ui/` (`/ui` redirects there)."""
    app.mount(PATH, StaticFiles(directory=STATIC, html=True), name="ui")

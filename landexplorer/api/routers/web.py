"""The web map: the page at ``/`` (for browsers), its static files and its settings.

``/`` is shared with the OGC API landing page: a browser (``Accept: text/html``) gets the
map, every other client (GDAL, OWSLib, ``curl``, ``?f=json``) the landing JSON. The page's
JavaScript dependencies come from npm (``landexplorer/web/node_modules``, installed by
``make install`` from the committed lockfile) and are served from here, so the map works
with no CDN and no network. Files are gzipped once in memory: the initial load is mostly
these files, and a phone on a slow link pays for every byte.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from fastapi import APIRouter, Request
from starlette.responses import Response

from landexplorer.api.errors import ApiError
from landexplorer.api.responses import JSONResponse
from landexplorer.api.routers import landing
from landexplorer.settings import Settings

router = APIRouter(tags=["Web map"])

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
STATIC_DIR = WEB_DIR / "static"
NODE_MODULES = WEB_DIR / "node_modules"

#: ``/web/vendor/<name>/...`` -> the ``dist`` folder of an npm package (only these).
VENDOR = {
    "leaflet": NODE_MODULES / "leaflet" / "dist",
    "vectorgrid": NODE_MODULES / "leaflet.vectorgrid" / "dist",
    "geoman": NODE_MODULES / "@geoman-io" / "leaflet-geoman-free" / "dist",
    "proj4": NODE_MODULES / "proj4" / "dist",
}
_SERVED_SUFFIXES = {".html", ".js", ".css", ".png", ".svg", ".json", ".ico", ".webmanifest"}
_COMPRESSIBLE = {".html", ".js", ".css", ".svg", ".json", ".webmanifest"}
_OSM_TEMPLATE = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("application/manifest+json", ".webmanifest")


@dataclass(frozen=True)
class _Asset:
    raw: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


@lru_cache(maxsize=256)
def _load(path: Path, mtime_ns: int) -> _Asset:
    """A file's bytes, gzipped copy and ETag (cached per path and modification time)."""
    raw = path.read_bytes()
    packed = gzip.compress(raw, 6, mtime=0) if path.suffix in _COMPRESSIBLE else None
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media.startswith("text/") or media.endswith("javascript"):
        media += "; charset=utf-8"
    tag = hashlib.sha1(raw).hexdigest()[:16]
    return _Asset(raw, packed if packed and len(packed) < len(raw) else None, media, tag)


def _not_found() -> ApiError:
    return ApiError(404, "not-found", "There is no such file of the web map.")


def resolve_asset(rel: str) -> Path:
    """The file behind ``/web/<rel>``, refusing anything outside the served folders."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts) or not rel.isprintable():
        raise _not_found()  # isprintable: no NUL or control characters reach the file system
    if parts[0] == "vendor" and len(parts) >= 3:
        base = VENDOR.get(parts[1])
        if base is None:
            raise _not_found()
        rest = parts[2:]
    else:
        base, rest = STATIC_DIR, parts
    path = base.joinpath(*rest).resolve()
    if not path.is_relative_to(base.resolve()) or path.suffix not in _SERVED_SUFFIXES:
        raise _not_found()
    if not path.is_file():
        if base != STATIC_DIR and not NODE_MODULES.is_dir():
            raise ApiError(
                404,
                "not-found",
                "The map's libraries are not installed on this server (run 'make install').",
            )
        raise _not_found()
    return path


def _serve(request: Request, path: Path, cache: str) -> Response:
    asset = _load(path, path.stat().st_mtime_ns)
    etag = f'"{asset.etag}"'
    headers = {"ETag": etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = asset.raw
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(status_code=200, headers=headers, media_type=asset.media_type)
    return Response(body, headers=headers, media_type=asset.media_type)


def wants_html(request: Request) -> bool:
    """Does the caller want the web page rather than JSON (a browser, no ``f=json``)?"""
    fmt = request.query_params.get("f")
    if fmt is not None:
        return fmt == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept


@router.api_route("/", methods=["GET", "HEAD"], summary="Landing page (JSON) or the web map (HTML)")
async def home(request: Request) -> Response:
    """The map for browsers; the OGC API landing document for every other client."""
    if wants_html(request):
        return _serve(request, STATIC_DIR / "index.html", "no-cache")
    return landing.landing(request)


@router.api_route("/web/{asset:path}", methods=["GET", "HEAD"], summary="Files of the web map")
async def web_asset(request: Request, asset: str) -> Response:
    """The page's own scripts and styles, and its npm libraries (served locally, no CDN)."""
    path = resolve_asset(asset)
    # Libraries change only with the lockfile; the page's own files may change on any deploy.
    cache = "public, max-age=86400" if asset.startswith("vendor/") else "no-cache"
    return _serve(request, path, cache)


def basemap_config(settings: Settings) -> dict[str, Any] | None:
    """The basemap the page draws under the layers (``None`` for a plain background)."""
    template = settings.basemap.strip()
    if not template or template.lower() == "none":
        return None
    if template == _OSM_TEMPLATE or "openstreetmap.org" in template:
        attribution = "© OpenStreetMap contributors (ODbL)"
    else:
        attribution = f"Basemap: {urlparse(template).hostname or 'custom tiles'}"
    return {"url": template, "attribution": attribution, "maxZoom": 19}


@router.api_route("/config.json", methods=["GET", "HEAD"], summary="Settings of the web map")
async def web_config(request: Request) -> JSONResponse:
    """What the page needs to know about this server: basemap, upload limit, write access."""
    settings: Settings = request.app.state.settings
    return JSONResponse(
        {
            "title": request.app.title,
            "basemap": basemap_config(settings),
            "maxUploadMb": settings.max_upload_mb,
            "uploadsNeedToken": bool(settings.write_token),
        },
        headers={"Cache-Control": "no-cache"},
    )

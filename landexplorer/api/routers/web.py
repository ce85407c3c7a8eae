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
import json
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response

from landexplorer.access.policy import can
from landexplorer.api.deps import Anyone, StoreDep, anyone
from landexplorer.api.errors import ApiError
from landexplorer.api.responses import JSONResponse
from landexplorer.api.routers import landing
from landexplorer.layers.demo import DEFAULT_MANIFEST
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
    "swagger-ui": NODE_MODULES / "swagger-ui-dist",
}
_SERVED_SUFFIXES = {".html", ".js", ".css", ".png", ".svg", ".json", ".ico", ".webmanifest"}
_COMPRESSIBLE = {".html", ".js", ".css", ".svg", ".json", ".webmanifest"}
_OSM_TEMPLATE = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
#: The basemaps a server can offer by name (``basemaps`` in the settings).
PRESETS: dict[str, dict[str, Any]] = {
    "osm": {
        "name": "OpenStreetMap",
        "url": _OSM_TEMPLATE,
        "attribution": "© OpenStreetMap contributors (ODbL)",
        "maxZoom": 19,
    },
    "topo": {
        "name": "OpenTopoMap (contours)",
        "url": "https://tile.opentopomap.org/{z}/{x}/{y}.png",
        "attribution": "Map data © OpenStreetMap contributors (ODbL), SRTM; "
        "map style © OpenTopoMap (CC-BY-SA)",
        "maxZoom": 17,
    },
    "none": {"name": "No basemap", "url": None, "attribution": "", "maxZoom": 22},
}

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


#: The page and its files are the same for everybody; what it shows comes from the API.
_ANYONE = [Depends(anyone)]


@router.api_route(
    "/",
    methods=["GET", "HEAD"],
    summary="Landing page (JSON) or the web map (HTML)",
    dependencies=_ANYONE,
)
async def home(request: Request) -> Response:
    """The map for browsers; the OGC API landing document for every other client."""
    if wants_html(request):
        return _serve(request, STATIC_DIR / "index.html", "no-cache")
    return landing.landing(request)


@router.api_route(
    "/web/{asset:path}",
    methods=["GET", "HEAD"],
    summary="Files of the web map",
    dependencies=_ANYONE,
)
async def web_asset(request: Request, asset: str) -> Response:
    """The page's own scripts and styles, and its npm libraries (served locally, no CDN)."""
    path = resolve_asset(asset)
    # Libraries change only with the lockfile; the page's own files may change on any deploy.
    cache = "public, max-age=86400" if asset.startswith("vendor/") else "no-cache"
    return _serve(request, path, cache)


def _custom_basemap(template: str, name: str = "", attribution: str = "") -> dict[str, Any]:
    """A basemap from a ``{z}/{x}/{y}`` template (attribution from its host when not given)."""
    if not attribution:
        if "openstreetmap.org" in template:
            attribution = PRESETS["osm"]["attribution"]
        else:
            attribution = f"Basemap: {urlparse(template).hostname or 'custom tiles'}"
    host = urlparse(template).hostname
    return {"name": name or host or "Custom tiles", "url": template, "attribution": attribution,
            "maxZoom": 19}  # fmt: skip


def _basemap_choice(text: str) -> tuple[str, dict[str, Any]] | None:
    """One entry of ``basemaps``: a preset name, or ``Name|template|attribution``."""
    text = text.strip()
    if text.lower() in PRESETS:
        return text.lower(), dict(PRESETS[text.lower()])
    parts = [p.strip() for p in text.split("|")]
    if len(parts) >= 2 and "{z}" in parts[1]:
        name = parts[0]
        ident = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "custom"
        return ident, _custom_basemap(parts[1], name, "|".join(parts[2:]))
    return None  # not a basemap: left out rather than breaking the page


def basemap_choices(settings: Settings) -> tuple[list[dict[str, Any]], str]:
    """The basemaps the page offers (``id``, name, URL, attribution) and the one it opens on.

    The page opens on ``basemap`` (a preset name, a tile template or ``none``); a template
    that is not among ``basemaps`` is offered first."""
    choices: dict[str, dict[str, Any]] = {}
    for text in settings.basemaps:
        found = _basemap_choice(text)
        if found and found[0] not in choices:
            choices[found[0]] = {"id": found[0], **found[1]}
    first = settings.basemap.strip() or "none"
    if first.lower() in PRESETS:
        default = first.lower()
        choices.setdefault(default, {"id": default, **PRESETS[default]})
    else:
        same = [c["id"] for c in choices.values() if c["url"] == first]
        default = same[0] if same else "custom"
        if not same:
            choices = {"custom": {"id": "custom", **_custom_basemap(first)}, **choices}
    return list(choices.values()), default


def basemap_config(settings: Settings) -> dict[str, Any] | None:
    """The basemap the page opens on (``None`` for a plain background)."""
    choices, default = basemap_choices(settings)
    chosen = next(c for c in choices if c["id"] == default)
    if chosen["url"] is None:
        return None
    return {k: chosen[k] for k in ("url", "attribution", "maxZoom")}


@lru_cache(maxsize=4)
def _manifest_map(path: Path, mtime_ns: int) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    shown = data.get("map") if isinstance(data, dict) else None
    return shown if isinstance(shown, dict) else {}


def layer_styles(settings: Settings) -> dict[str, Any]:
    """How the layers of the manifest the catalogue was loaded from are drawn (colours,
    class colours in legend order) and which a first visit shows: the ``map`` section of
    the demo manifest. Layers it does not name get the page's own colours."""
    path = Path(settings.demo_manifest or DEFAULT_MANIFEST)
    try:
        shown = _manifest_map(path, path.stat().st_mtime_ns)
    except OSError:
        shown = {}
    styles = shown.get("styles")
    visible = shown.get("visible")
    return {
        "styles": styles if isinstance(styles, dict) else {},
        "defaultLayers": [v for v in visible if isinstance(v, str)]
        if isinstance(visible, list)
        else [],
    }


def styles_for(settings: Settings, unseen: set[str]) -> dict[str, Any]:
    """:func:`layer_styles` without the layers in ``unseen``: the page's settings never
    name a layer of the catalogue the caller may not see (names the catalogue does not
    hold are the manifest's, and tell nothing)."""
    shown = layer_styles(settings)
    return {
        "styles": {k: v for k, v in shown["styles"].items() if k not in unseen},
        "defaultLayers": [k for k in shown["defaultLayers"] if k not in unseen],
    }


@router.api_route("/config.json", methods=["GET", "HEAD"], summary="Settings of the web map")
def web_config(request: Request, actor: Anyone, store: StoreDep) -> JSONResponse:
    """What the page needs to know about this server: basemaps, the styles of the layers
    the caller may see, upload limit, write access."""
    settings: Settings = request.app.state.settings
    choices, default = basemap_choices(settings)
    unseen = {e.id for e in store.list_layers() if not can(actor, "view", e)}
    return JSONResponse(
        {
            "title": request.app.title,
            "basemap": basemap_config(settings),
            "basemaps": choices,
            "defaultBasemap": default,
            **styles_for(settings, unseen),
            "maxUploadMb": settings.max_upload_mb,
            "accounts": True,
        },
        # what it names depends on who asks: never kept by a shared cache
        headers={"Cache-Control": "private, no-cache"},
    )


@router.get("/docs", include_in_schema=False, dependencies=_ANYONE)
async def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI for the API, its scripts served from here (works offline, no CDN)."""
    vendor = "/web/vendor/swagger-ui"
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} – API",
        swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
        swagger_css_url=f"{vendor}/swagger-ui.css",
        swagger_favicon_url=f"{vendor}/favicon-32x32.png",
        # no badge from validator.swagger.io: nothing leaves this server
        swagger_ui_parameters={"validatorUrl": None},
    )

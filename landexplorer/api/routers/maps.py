"""Saved maps: ``POST /maps`` stores a view (centre, zoom, layers, drawn shapes) and returns a
short id; ``GET /maps/{id}`` gives it back; ``/m/{id}`` is the short link people share.

A saved map is a small JSON file under ``data_dir/maps``, written to a temporary file and
renamed into place, so a reader never sees half a map and a crash leaves no damaged file.
Nothing in it is trusted: the body is checked against a strict model and capped in size.

Whoever opens a map sees only the layers they may see (the policy's ``view``): a layer
they may not see, or one deleted since, is left out without its name or any detail, and
the answer says how many are "not available to you". The answer lists the licences and
attributions of the layers shown and what they oblige (``access.licences.combine``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse

from landexplorer.access.licences import combine
from landexplorer.api.deps import Anyone, store_of, visible
from landexplorer.api.errors import ApiError
from landexplorer.api.refusals import answers
from landexplorer.api.responses import JSONResponse
from landexplorer.api.routers.landing import base_url
from landexplorer.catalog import LayerEntry
from landexplorer.errors import LayerNotFound
from landexplorer.settings import Settings

router = APIRouter(tags=["Saved maps"])

#: Space left free on the disk whatever the map quota says: saved maps never fill it.
_KEEP_FREE_BYTES = 200 * 1024 * 1024
_MAP_ID = re.compile(r"^[A-Za-z0-9_-]{8,16}$")
MapId = Annotated[str, PathParam(alias="mapId", max_length=16)]


class View(BaseModel):
    """Where the map looks: centre as [latitude, longitude] and a zoom level."""

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as the schema says
    center: tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]
    zoom: float = Field(ge=0, le=22)


class MapLayer(BaseModel):
    """A layer shown on the saved map and how."""

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as the schema says
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    opacity: float = Field(default=1.0, ge=0, le=1)


class SavedMap(BaseModel):
    """What a saved map holds."""

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as the schema says
    title: str = Field(default="", max_length=200)
    view: View
    layers: list[MapLayer] = Field(default_factory=list, max_length=100)
    shapes: dict[str, Any] | None = Field(
        default=None, description="Drawn shapes as a GeoJSON FeatureCollection (lon/lat)."
    )


def maps_dir(settings: Settings) -> Path:
    """Where saved maps are kept."""
    return settings.data_dir / "maps"


def _check_shapes(shapes: dict[str, Any] | None) -> None:
    if shapes is None:
        return
    if shapes.get("type") != "FeatureCollection" or not isinstance(shapes.get("features"), list):
        raise ApiError(400, "bad-request", "The drawn shapes must be a GeoJSON FeatureCollection.")
    if len(shapes["features"]) > 500:
        raise ApiError(400, "bad-request", "A saved map can hold at most 500 drawn shapes.")


def _publish(tmp: Path, target: Path) -> None:
    """Give the finished file its name. link() fails if the name was taken meanwhile, so two
    savers never overwrite each other; where the file system has no hard links, rename."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        if target.exists():
            raise FileExistsError(target) from None
        os.replace(tmp, target)


def _check_room(folder: Path, quota_mb: int) -> None:
    """Refuse a new map when saved maps reach their quota or the disk is nearly full."""
    used = 0
    if folder.is_dir():
        with os.scandir(folder) as entries:
            for item in entries:
                with contextlib.suppress(OSError):
                    used += item.stat(follow_symlinks=False).st_size
    free = shutil.disk_usage(folder if folder.is_dir() else folder.parent).free
    if used >= quota_mb * 1024 * 1024 or free < _KEEP_FREE_BYTES:
        raise ApiError(
            507, "storage-full",
            "This server has no room for more saved maps just now. Share the map's address "
            "(the link in your browser's address bar) instead, or tell the server's "
            "administrator.",
        )  # fmt: skip


def write_map(folder: Path, body: dict[str, Any]) -> str:
    """Store a map under a new random id, atomically; returns the id."""
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    for _ in range(5):
        map_id = secrets.token_urlsafe(6)  # 8 characters, 48 random bits
        target = folder / f"{map_id}.json"
        if target.exists():
            continue
        fd, tmp = tempfile.mkstemp(prefix=".map-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _publish(Path(tmp), target)
        except FileExistsError:
            continue
        finally:
            Path(tmp).unlink(missing_ok=True)
        return map_id
    raise ApiError(503, "busy", "The map could not be saved just now. Please try again.")


def read_map(folder: Path, map_id: str) -> dict[str, Any]:
    """A saved map by id, or a 404 in plain words."""
    missing = ApiError(404, "not-found", "There is no saved map with that link.")
    if not _MAP_ID.match(map_id):
        raise missing
    try:
        data: dict[str, Any] = json.loads((folder / f"{map_id}.json").read_text("utf-8"))
    except FileNotFoundError:
        raise missing from None
    return data


def unavailable_words(count: int) -> str:
    """ "1 layer on this map is not available to you." (no names, nothing else)."""
    if count == 1:
        return "1 layer on this map is not available to you."
    return f"{count} layers on this map are not available to you."


def _seen(
    request: Request, layers: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[LayerEntry], int]:
    """The map's layers the caller may see (as saved), their entries, and how many others."""
    store = store_of(request)
    shown: list[dict[str, Any]] = []
    entries: list[LayerEntry] = []
    hidden = 0
    for layer in layers:
        try:
            entry = store.get(str(layer.get("id", "")))
        except (LayerNotFound, ValueError):
            entry = None
        if entry is None or not visible(entry, request):
            hidden += 1  # a deleted layer looks the same as one the caller may not see
            continue
        shown.append(layer)
        entries.append(entry)
    return shown, entries, hidden


def _with_access(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the caller may see it: their layers, how many are not, and licences."""
    shown, entries, hidden = _seen(request, list(body.get("layers") or []))
    body["layers"] = shown
    body["unavailable"] = hidden
    if hidden:
        body["unavailable_message"] = unavailable_words(hidden)
    body["licences"] = combine(entries).to_dict()
    return body


def _links(root: str, map_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "type": "application/json", "href": f"{root}/maps/{map_id}"},
        {"rel": "alternate", "type": "text/html", "href": f"{root}/m/{map_id}"},
    ]


_PRIVATE = {"Cache-Control": "private, no-cache", "Vary": "Cookie, Authorization"}


@router.post(
    "/maps",
    status_code=201,
    summary="Save a map",
    operation_id="saveMap",
    responses=answers("The saved map's id, short link and layers' licences.", 400, 413, code=201),
)
async def save_map(request: Request, actor: Anyone) -> JSONResponse:
    """Store the view, layers and drawn shapes; answer with the id and the short link."""
    settings: Settings = request.app.state.settings
    raw = await request.body()  # counted as it streams: at most max_json_kb (api/limits.py)
    if len(raw) > settings.maps_max_kb * 1024:
        raise ApiError(
            413, "too-large",
            f"This map is too large to save (more than {settings.maps_max_kb} KB): "
            "draw fewer or simpler shapes.",
        )  # fmt: skip
    wait = request.app.state.maps_rate.allow(request.client.host if request.client else "")
    if wait:
        raise ApiError(
            429, "too-many-requests",
            f"You have saved {settings.maps_per_minute} maps in the last minute. Please wait "
            f"{int(wait) + 1} seconds and try again.",
            {"Retry-After": str(int(wait) + 1)},
        )  # fmt: skip
    try:
        saved = SavedMap.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise ApiError(
            400, "bad-request", f"The map could not be saved: '{where}' {first['msg']}."
        ) from None
    _check_shapes(saved.shapes)
    body = saved.model_dump(mode="json")
    body["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    folder = maps_dir(settings)
    await run_in_threadpool(_check_room, folder, settings.maps_max_total_mb)
    map_id = await run_in_threadpool(write_map, folder, body)
    root = base_url(request)
    _, entries, _ = await run_in_threadpool(_seen, request, body["layers"])
    return JSONResponse(
        {
            "id": map_id,
            "url": f"{root}/m/{map_id}",
            "links": _links(root, map_id),
            "licences": combine(entries).to_dict(),
        },
        status_code=201,
        headers={"Location": f"{root}/maps/{map_id}"},
    )


@router.api_route(
    "/maps/{mapId}",
    methods=["GET", "HEAD"],
    summary="A saved map",
    operation_id="getMap",
)
async def get_map(request: Request, actor: Anyone, map_id: MapId) -> JSONResponse:
    """The saved view, the layers you may see, shapes, how many layers are not available
    to you (never which), and the licences and attributions of the layers shown."""
    settings: Settings = request.app.state.settings
    body = read_map(maps_dir(settings), map_id)
    body = await run_in_threadpool(_with_access, request, body)
    body["id"] = map_id
    body["links"] = _links(base_url(request), map_id)
    return JSONResponse(body, headers=_PRIVATE)


@router.get(
    "/m/{mapId}",
    summary="Short link of a saved map",
    operation_id="openMap",
)
async def open_map(request: Request, actor: Anyone, map_id: MapId) -> RedirectResponse:
    """Open a saved map in the web page."""
    settings: Settings = request.app.state.settings
    read_map(maps_dir(settings), map_id)  # a 404 here is clearer than an empty map
    return RedirectResponse(f"/?map={map_id}", status_code=303)

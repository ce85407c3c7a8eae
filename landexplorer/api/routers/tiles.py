"""Tiles (OGC API - Tiles paths, an XYZ alias and TileJSON) for every collection.

Vector layers give Mapbox Vector Tiles, raster layers PNG. A cached tile is answered on
the event loop without a thread hop; a tile drawn for the first time is drawn in the
thread pool. A vector tile for a client that accepts gzip is compressed once, in the same
thread as its drawing, and the compressed copy is kept in the tile cache beside it: the
next request of that tile, in any worker, sends the kept bytes (``CachedTiles``) instead
of compressing again. Work happens in ``landexplorer.tiles``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from landexplorer.access.secrets import LINK_PREFIX
from landexplorer.api.auth import LINK_PARAM
from landexplorer.api.caching import not_modified
from landexplorer.api.deps import Collection, private_unless_public
from landexplorer.api.errors import ApiError
from landexplorer.api.responses import JSONResponse
from landexplorer.api.routers.landing import base_url
from landexplorer.api.tilefast import accepts_gzip
from landexplorer.catalog import LayerEntry
from landexplorer.tiles import TileService
from landexplorer.tiles.cache import TileKey
from landexplorer.tiles.tilejson import tilejson, zoom_range

router = APIRouter(tags=["Tiles"])

MVT = "application/vnd.mapbox-vector-tile"
PNG = "image/png"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CACHE_CONTROL = "public, max-age=300"
#: A tile of a layer that is not public: kept by the asker's browser only, never by a
#: shared cache (a proxy could hand a group layer's tile to anyone).
PRIVATE_CACHE_CONTROL = "private, max-age=300"

Z = Annotated[int, Path(ge=0, le=24, description="Zoom level (tile matrix).")]
X = Annotated[int, Path(ge=0, description="Tile column.")]
Y = Annotated[int, Path(ge=0, description="Tile row (from the top).")]
Properties = Annotated[
    str | None,
    Query(description="Comma-separated columns to put in vector tiles (default: all)."),
]
Colormap = Annotated[
    str | None, Query(description="Colour ramp of raster tiles: terrain, viridis, greys, blues.")
]
Rescale = Annotated[
    str | None,
    Query(description="Value range of the colour ramp, 'low,high' (default: data range)."),
]


def tiles_of(request: Request) -> TileService:
    """The app's tile service (built by ``create_app``)."""
    service: TileService = request.app.state.tiles
    return service


def _parse_rescale(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise ApiError(
            400, "bad-request", "rescale needs two numbers, the lower first, e.g. rescale=0,100."
        ) from None
    return low, high


def etag_of(key: TileKey) -> str:
    """The ETag of a tile: its layer generation, variant and address."""
    return f'"{key.layer_id}-{key.generation}-{key.variant}-{key.z}-{key.x}-{key.y}"'


def cache_control(public: bool) -> str:
    """``Cache-Control`` of a tile (and of its 304) of a public layer or of another."""
    return CACHE_CONTROL if public else PRIVATE_CACHE_CONTROL


def _tile_response(
    data: bytes, media: str, etag: str, public: bool = True, packed: bytes | None = None
) -> Response:
    headers = {"ETag": etag, "Cache-Control": cache_control(public)}
    if not data:
        return Response(status_code=204, headers=headers)
    if packed is not None:  # the cache's gzip copy (the HTTP layer passes it on as it is)
        headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return Response(packed, media_type=media, headers=headers)
    return Response(data, media_type=media, headers=headers)


def _draw_vector(
    service: TileService,
    entry: LayerEntry,
    key: TileKey,
    props: tuple[str, ...] | None,
    gzip: bool,
) -> tuple[bytes, bytes | None]:
    """Draw a vector tile and, for a client that accepts gzip, its kept compressed copy
    (both in the thread pool: neither holds up the event loop)."""
    data = service.render_vector(entry, key, props, pack=gzip)
    return data, (service.cache.compressed(key, data) if gzip and data else None)


async def _tile(
    request: Request,
    entry: LayerEntry,
    z: int,
    x: int,
    y: int,
    properties: str | None,
    colormap: str | None,
    rescale: str | None,
    want: str | None = None,
) -> Response:
    service = tiles_of(request)
    if want is not None and want != entry.data_type:
        service.check_type(entry, want)
    if entry.data_type == "vector":
        names = [p.strip() for p in properties.split(",") if p.strip()] if properties else None
        key, props = service.vector_request(entry, z, x, y, names)
        media = MVT
    else:
        key, ramp, value_range = service.raster_request(
            entry, z, x, y, colormap, _parse_rescale(rescale)
        )
        media = PNG
    etag = etag_of(key)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        unchanged.headers["Cache-Control"] = cache_control(entry.is_public)
        return unchanged
    data = service.cached(key)
    packed: bytes | None = None
    if entry.data_type == "vector":
        gzip = accepts_gzip(request.scope)
        if data is None:
            data, packed = await run_in_threadpool(_draw_vector, service, entry, key, props, gzip)
        elif gzip and data:
            packed = await run_in_threadpool(service.cache.compressed, key, data)
    elif data is None:
        data = await run_in_threadpool(service.render_raster, entry, key, ramp, value_range)
    assert data is not None
    return _tile_response(data, media, etag, entry.is_public, packed)


@router.api_route(
    "/collections/{collectionId}/tiles/WebMercatorQuad/{z}/{x}/{y}",
    methods=["GET", "HEAD"],
    summary="A tile of a collection (MVT for vector layers, PNG for rasters)",
    operation_id="getCollectionTile",
    responses={200: {"content": {MVT: {}, PNG: {}}}, 204: {"description": "Empty tile"}},
)
async def collection_tile(
    request: Request,
    entry: Collection,
    z: Z,
    x: X,
    y: Y,
    properties: Properties = None,
    colormap: Colormap = None,
    rescale: Rescale = None,
) -> Response:
    """One WebMercatorQuad tile; 204 when no feature touches it."""
    return await _tile(request, entry, z, x, y, properties, colormap, rescale)


@router.api_route(
    "/tiles/{collectionId}/{z}/{x}/{y}.{fmt}",
    methods=["GET", "HEAD"],
    summary="A tile by the short XYZ address (.mvt or .pbf for vector layers, .png for rasters)",
    operation_id="getXyzTile",
    responses={200: {"content": {MVT: {}, PNG: {}}}, 204: {"description": "Empty tile"}},
)
async def xyz_tile(
    request: Request,
    entry: Collection,
    z: Z,
    x: X,
    y: Y,
    fmt: Annotated[str, Path(pattern="^(mvt|pbf|png)$", description="mvt, pbf or png")],
    properties: Properties = None,
    colormap: Colormap = None,
    rescale: Rescale = None,
) -> Response:
    """The same tile as the OGC address, for map libraries that expect {z}/{x}/{y}.ext."""
    want = "raster" if fmt == "png" else "vector"
    return await _tile(request, entry, z, x, y, properties, colormap, rescale, want)


#: A share link as the page sends it (the prefix, then URL-safe characters).
_LINK = re.compile(re.escape(LINK_PREFIX) + r"[A-Za-z0-9_-]{16,128}")


def _tile_url(request: Request, entry: LayerEntry) -> str:
    """The tile address template; a layer seen through a share link keeps the link in it,
    so a map library that follows the TileJSON gets the tiles the holder may see."""
    ext = "png" if entry.data_type == "raster" else "mvt"
    url = f"{base_url(request)}/tiles/{entry.id}/{{z}}/{{x}}/{{y}}.{ext}"
    if entry.visibility != "public":
        links = [v for v in request.query_params.getlist(LINK_PARAM) if _LINK.fullmatch(v)][:8]
        if links:
            url += "?" + urlencode([(LINK_PARAM, v) for v in links])
    return url


@router.api_route(
    "/collections/{collectionId}/tiles/WebMercatorQuad/tilejson.json",
    methods=["GET", "HEAD"],
    summary="TileJSON 3.0 for a collection's tiles",
    operation_id="getCollectionTileJSON",
)
async def collection_tilejson(request: Request, entry: Collection) -> JSONResponse:
    """TileJSON 3.0.0: tile URL, zoom range, bounds, attribution, vector_layers."""
    return JSONResponse(
        tilejson(entry, _tile_url(request, entry)), headers=private_unless_public(entry)
    )


@router.api_route(
    "/tiles/{collectionId}/tilejson.json",
    methods=["GET", "HEAD"],
    summary="TileJSON 3.0 (short address)",
    operation_id="getTileJSON",
)
async def short_tilejson(request: Request, entry: Collection) -> JSONResponse:
    """The same TileJSON as the OGC address."""
    return JSONResponse(
        tilejson(entry, _tile_url(request, entry)), headers=private_unless_public(entry)
    )


def _tileset(request: Request, entry: LayerEntry) -> dict[str, Any]:
    root = f"{base_url(request)}/collections/{entry.id}/tiles/WebMercatorQuad"
    media = PNG if entry.data_type == "raster" else MVT
    minzoom, maxzoom = zoom_range(entry)
    return {
        "title": f"{entry.title} (WebMercatorQuad)",
        "dataType": "map" if entry.data_type == "raster" else "vector",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": TMS_URI,
        "tileMatrixSetLimits": [{"tileMatrix": str(z)} for z in range(minzoom, maxzoom + 1)],
        "links": [
            {"rel": "self", "type": "application/json", "href": root},
            {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", "href": TMS_URI},
            {
                "rel": "item",
                "type": media,
                "templated": True,
                "href": root + "/{tileMatrix}/{tileCol}/{tileRow}",
            },
            {"rel": "describedby", "type": "application/json", "href": root + "/tilejson.json"},
        ],
    }


@router.api_route(
    "/collections/{collectionId}/tiles",
    methods=["GET", "HEAD"],
    summary="Tilesets of a collection (OGC API - Tiles)",
    operation_id="getCollectionTilesets",
)
async def tilesets(request: Request, entry: Collection) -> JSONResponse:
    """The one tileset (WebMercatorQuad) this collection offers."""
    return JSONResponse(
        {"tilesets": [_tileset(request, entry)]}, headers=private_unless_public(entry)
    )


@router.api_route(
    "/collections/{collectionId}/tiles/WebMercatorQuad",
    methods=["GET", "HEAD"],
    summary="Tileset metadata (OGC API - Tiles)",
    operation_id="getCollectionTileset",
)
async def tileset(request: Request, entry: Collection) -> JSONResponse:
    """Tileset metadata with the tile URL template."""
    return JSONResponse(_tileset(request, entry), headers=private_unless_public(entry))

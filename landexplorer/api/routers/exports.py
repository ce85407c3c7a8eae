"""``/collections/{id}/export?f=geojson|csv|gpkg|shp|kml[&crs=EPSG:27700]``: downloads.

An export is a download: the policy's ``download`` action decides who may make one. Every
export of a layer that is not public goes in the audit log (who, which layer and version,
the format and CRS, when) before the file is sent.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from landexplorer.api.auth import access_of, actor_of
from landexplorer.api.deps import StoreDep, VectorDownloadCollection
from landexplorer.api.exporting import FORMATS, export_crs, write_export
from landexplorer.api.metadata import licence_links
from landexplorer.api.routing import get_and_head

router = APIRouter(tags=["Exports"])


@get_and_head(
    router,
    "/collections/{collectionId}/export",
    summary="Download a collection",
    response_class=FileResponse,
    responses={200: {"content": {media: {} for media, _ in FORMATS.values()}}},
)
def export(
    request: Request,
    entry: VectorDownloadCollection,
    store: StoreDep,
    f: Annotated[str, Query(pattern="^(geojson|csv|gpkg|shp|kml)$")] = "geojson",
    crs: Annotated[str | None, Query(max_length=200, description="e.g. EPSG:27700")] = None,
) -> Response:
    """The whole collection as a file, with its licence and attribution inside."""
    target = export_crs(crs)
    media, suffix = FORMATS[f]
    epsg = target.to_epsg() if f != "kml" else 4326
    links = ", ".join(f'<{link["href"]}>; rel="license"' for link in licence_links(entry))
    filename = f"{entry.id}_v{entry.version}_epsg{epsg}{suffix}"
    headers = {"Content-Crs": f"<http://www.opengis.net/def/crs/EPSG/0/{epsg}>"}
    if links:
        headers["Link"] = links
    if not entry.is_public:  # a copy for this caller only: never kept by any cache
        headers["Cache-Control"] = "private, no-store"
    if request.method == "HEAD":  # what GET would send, without writing the file
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        return Response(media_type=media, headers=headers)
    folder = Path(tempfile.mkdtemp(prefix="le-export-"))
    try:
        path = write_export(store, entry, f, target, folder)
        if not entry.is_public:  # recorded before a byte of it leaves
            access_of(request).audit(
                actor_of(request), "download", entry.id, entry.version, format=f,
                crs=f"EPSG:{epsg}",
            )  # fmt: skip
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type=media,
        filename=filename,
        headers=headers,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )

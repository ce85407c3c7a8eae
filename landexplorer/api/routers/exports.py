"""``/collections/{id}/export?f=geojson|csv|gpkg|shp|kml[&crs=EPSG:27700]``: downloads."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.background import BackgroundTask
from starlette.responses import FileResponse

from landexplorer.api.deps import StoreDep, VectorCollection
from landexplorer.api.exporting import FORMATS, export_crs, write_export
from landexplorer.api.metadata import licence_links

router = APIRouter(tags=["Exports"])


@router.get(
    "/collections/{collectionId}/export",
    summary="Download a collection",
    response_class=FileResponse,
    responses={200: {"content": {media: {} for media, _ in FORMATS.values()}}},
)
def export(
    entry: VectorCollection,
    store: StoreDep,
    f: Annotated[str, Query(pattern="^(geojson|csv|gpkg|shp|kml)$")] = "geojson",
    crs: Annotated[str | None, Query(max_length=200, description="e.g. EPSG:27700")] = None,
) -> FileResponse:
    """The whole collection as a file, with its licence and attribution inside."""
    target = export_crs(crs)
    folder = Path(tempfile.mkdtemp(prefix="le-export-"))
    try:
        path = write_export(store, entry, f, target, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    media, suffix = FORMATS[f]
    epsg = target.to_epsg() if f != "kml" else 4326
    links = ", ".join(f'<{link["href"]}>; rel="license"' for link in licence_links(entry))
    headers = {"Content-Crs": f"<http://www.opengis.net/def/crs/EPSG/0/{epsg}>"}
    if links:
        headers["Link"] = links
    return FileResponse(
        path,
        media_type=media,
        filename=f"{entry.id}_v{entry.version}_epsg{epsg}{suffix}",
        headers=headers,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )

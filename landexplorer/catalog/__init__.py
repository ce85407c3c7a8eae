"""The layer catalogue and the stores behind it."""

from __future__ import annotations

from landexplorer.catalog.base import (
    FID,
    GEOMETRY,
    BBox,
    Filter,
    Query,
    SqlRunner,
    Store,
    VersionChanged,
    check_bbox,
)
from landexplorer.catalog.model import IngestReport, LayerEntry, check_layer_id, slugify
from landexplorer.settings import Settings

__all__ = [
    "FID",
    "GEOMETRY",
    "BBox",
    "Filter",
    "IngestReport",
    "LayerEntry",
    "Query",
    "SqlRunner",
    "Store",
    "VersionChanged",
    "check_bbox",
    "check_layer_id",
    "open_store",
    "slugify",
]


def open_store(settings: Settings) -> Store:
    """The store the settings ask for: PostGIS for a ``postgresql://`` URL, else the GeoPackage."""
    if settings.database_url:
        url = settings.database_url
        if not url.startswith(("postgresql://", "postgres://")):
            from landexplorer.errors import InputError

            raise InputError(
                "LANDEXPLORER_DATABASE_URL must start with postgresql:// "
                "(for example postgresql://user@localhost/landexplorer)."
            )
        from landexplorer.catalog.postgis import PostGISStore

        return PostGISStore(url, settings.raster_dir)
    from landexplorer.catalog.gpkg import GeoPackageStore

    return GeoPackageStore(settings.catalog_path, settings.raster_dir)

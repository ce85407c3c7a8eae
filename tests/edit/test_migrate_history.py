"""``landexplorer migrate`` carries the feature history from a GeoPackage catalogue into
PostGIS: a feature's history, the change list and ``asOf`` read the same there, and a
second run adds nothing twice."""

from __future__ import annotations

import warnings

import pytest

from landexplorer.api import create_app
from landexplorer.catalog.gpkg import GeoPackageStore
from landexplorer.catalog.migrate import migrate
from landexplorer.catalog.postgis import PostGISStore
from tests.edit.conftest import LAYER, World
from tests.edit.test_features_edit import ITEMS, read
from tests.edit.test_history import patch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.mark.parametrize("store_backend", ["gpkg"])
def test_migrate_carries_the_history(world: World, pg_cluster) -> None:
    first = patch(world, 13, "Edited in the GeoPackage").json()
    tag = read(world, 14).headers["etag"]
    world.send("DELETE", f"{ITEMS}/14", "ora", headers={"If-Match": tag})
    before = world.get(f"/collections/{LAYER}/changes").json()["changes"]
    settings = world.settings
    url = pg_cluster.new_database("history")
    source = GeoPackageStore(settings.catalog_path, settings.raster_dir)
    target = PostGISStore(url, settings.raster_dir)
    try:
        report = migrate(source, target)
        assert report.ok and report.history is not None
        assert (report.history.source_count, report.history.added) == (2, 2)
        again = migrate(source, target)  # nothing twice
        assert again.history is not None and again.history.added == 0
    finally:
        source.close()
        target.close()
    pg = settings.model_copy(update={"database_url": url})
    with TestClient(create_app(pg)) as client:
        headers = world.as_("ora")
        after = client.get(f"/collections/{LAYER}/changes", headers=headers).json()["changes"]
        keep = ("featureId", "operation", "by", "at", "layerVersion", "before", "after")
        assert [{k: c[k] for k in keep} for c in after] == [{k: c[k] for k in keep} for c in before]
        assert (
            client.get(f"{ITEMS}/13", headers=headers).json()["properties"] == first["properties"]
        )
        # and edits go on in PostGIS, after the carried ones
        tag = client.get(f"{ITEMS}/13", headers=headers).headers["etag"]
        r = client.patch(f"{ITEMS}/13", json={"properties": {"name": "In PostGIS"}},
                         headers={**headers, "If-Match": tag})  # fmt: skip
        assert r.status_code == 200, r.text
        ops = [
            c["operation"]
            for c in client.get(f"{ITEMS}/13/history", headers=headers).json()["changes"]
        ]
        assert ops == ["update", "update"]

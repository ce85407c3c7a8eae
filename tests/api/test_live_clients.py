"""A live ``landexplorer serve`` on loopback, used by real, independent clients:
GDAL's OAPIF driver (through pyogrio and Debian's ogrinfo/ogr2ogr) and OWSLib."""

from __future__ import annotations

import json
import shutil
import subprocess

import pyogrio
import pytest

from tests.conftest import IN_CI

# Locally a missing gdal-bin skips; in CI (scripts/system-deps.sh installs it) it fails.
needs_ogr = pytest.mark.skipif(
    shutil.which("ogrinfo") is None and not IN_CI,
    reason="gdal-bin not installed (scripts/system-deps.sh installs it)",
)


def test_pyogrio_oapif_lists_counts_filters(live_url):
    src = f"OAPIF:{live_url}"
    layers = {name for name, _ in pyogrio.list_layers(src)}
    assert {"flood_risk", "allotments"} <= layers
    info = pyogrio.read_info(src, layer="flood_risk", force_feature_count=True)
    assert info["features"] == 1494
    frame = pyogrio.read_dataframe(src, layer="flood_risk", bbox=(-2.40, 53.40, -2.33, 53.44))
    direct = pyogrio.read_dataframe(src, layer="flood_risk")
    assert len(direct) == 1494  # a whole collection through paging
    import shapely

    expected = int(direct.geometry.intersects(shapely.box(-2.40, 53.40, -2.33, 53.44)).sum())
    assert len(frame) == expected > 0
    assert (direct["prob_4band"] == "High").sum() == 302


@needs_ogr
def test_ogrinfo_and_ogr2ogr(live_url, tmp_path):
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", f"OAPIF:{live_url}", "allotments"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Feature Count: 35" in out.stdout
    target = tmp_path / "copy.gpkg"
    run = subprocess.run(
        ["ogr2ogr", "-f", "GPKG", str(target), f"OAPIF:{live_url}", "flood_risk"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    copied = pyogrio.read_info(target, force_feature_count=True)
    assert copied["features"] == 1494
    bbox = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-spat", "-2.40", "53.40", "-2.33", "53.44",
         f"OAPIF:{live_url}", "flood_risk"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    count = int(bbox.stdout.split("Feature Count: ")[1].split()[0])
    assert 0 < count < 1494


def test_owslib_features(live_url):
    from owslib.ogcapi.features import Features

    api = Features(live_url)
    assert any(c.endswith("features-1/1.0/conf/core") for c in api.conformance()["conformsTo"])
    ids = {c["id"] for c in api.collections()["collections"]}
    assert "allotments" in ids
    meta = api.collection("allotments")
    assert meta["itemType"] == "feature"
    items = api.collection_items("allotments", limit=50)
    assert items["numberMatched"] == 35 and len(items["features"]) == 35
    one = api.collection_item("allotments", str(items["features"][0]["id"]))
    assert one["type"] == "Feature"
    assert json.loads(json.dumps(api.collection_queryables("allotments")))["properties"]["name"]


def test_head_then_get_like_gdal(live_url):
    import httpx

    r = httpx.head(f"{live_url}/collections/allotments/items")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"

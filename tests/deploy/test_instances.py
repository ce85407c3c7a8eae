"""Several ``landexplorer serve`` processes on one catalogue: a change made through one is
served by the others within a second, and none serves anything of an older version after
that (docs/deploy.md).

Two instances on one PostGIS, each with a data folder of its own (two machines: their
tile caches are apart), and two workers of one instance on one GeoPackage. Every check
polls with a deadline of one second from the moment the change was answered; the first
request after a replace must already be of the new version.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin

import httpx
import mapbox_vector_tile
import pytest

from landexplorer.settings import Settings
from tests import live
from tests.people import bearer, make_token

WITHIN_S = 1.0
#: a z8 tile holding the whole of Trafford (lon -2.48..-2.25, lat 53.36..53.48)
TILE = "8/126/82"


def within(check: Callable[[], bool], what: str, seconds: float = WITHIN_S) -> float:
    """Ask ``check`` until it holds; fail when ``seconds`` pass first. Returns the time."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.01)


def status(url: str, headers: dict[str, str] | None = None) -> int:
    """The status of a GET on a fresh connection (several workers share a port)."""
    return httpx.get(url, headers=headers or {}, timeout=10).status_code


def upload(base: str, auth: dict[str, str], path: Path, method: str = "POST", **form: str) -> str:
    """Upload (POST a new layer, or PUT a new version) and wait for the job; its address."""
    target = base + ("/collections" if method == "POST" else f"/collections/{form.pop('id')}")
    with path.open("rb") as fh:
        r = httpx.request(
            method, target, files={"file": (path.name, fh)}, data=form, headers=auth, timeout=60
        )
    assert r.status_code == 202, r.text
    location = urljoin(base + "/", r.headers["location"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = httpx.get(location, headers=auth, timeout=10).json()
        if job["status"] in ("successful", "failed"):
            assert job["status"] == "successful", job
            return location
        time.sleep(0.05)
    raise AssertionError(f"the upload did not finish: {job}")


def features(data: bytes) -> list[dict]:
    layers = mapbox_vector_tile.decode(data)
    return [f for layer in layers.values() for f in layer["features"]]


@pytest.fixture
def two_instances(pg_cluster, real_data, tmp_path: Path) -> Iterator[tuple[str, str, Settings]]:
    """Two ``serve`` instances on one PostGIS, each with its own data folder."""
    url = pg_cluster.new_database("deploy")
    a = Settings(data_dir=tmp_path / "a" / "data", database_url=url)
    b = Settings(data_dir=tmp_path / "b" / "data", database_url=url)
    for each in (a, b):
        each.data_dir.mkdir(parents=True)
    with (
        live.serve(a.data_dir, database_url=url) as first,
        live.serve(b.data_dir, database_url=url) as second,
    ):
        yield first, second, a


def test_a_change_through_one_instance_is_served_by_the_other(two_instances, real_data):
    a, b, settings = two_instances
    admin = bearer(make_token(settings))
    plots = real_data / "allotments" / "trafford_allotments.geojson"
    sssi = real_data / "designations" / "trafford_sites_of_special_scientific_interest.geojson"

    # ---- an upload through A: B serves the layer, its items and its tiles
    job = upload(a, admin, plots, id="plots", licence="OGL-UK-3.0", visibility="public")
    within(lambda: status(f"{b}/collections/plots") == 200, "B serves a layer uploaded on A")
    items = httpx.get(f"{b}/collections/plots/items", timeout=10)
    assert items.json()["numberMatched"] == 35
    tile_b = httpx.get(f"{b}/tiles/plots/{TILE}.mvt", timeout=10)
    assert tile_b.status_code == 200 and len(features(tile_b.content)) == 35
    again = httpx.get(f"{b}/tiles/plots/{TILE}.mvt", timeout=10)  # B's cached copy
    assert again.headers["etag"] == tile_b.headers["etag"]
    collection = httpx.get(f"{b}/collections/plots", timeout=10)
    # a job made on A is followed on A (the data folder holds it; see docs/deploy.md)
    assert httpx.get(job, headers=admin, timeout=10).status_code == 200

    # ---- a replace through A: the very first answers of B are of the new version
    upload(a, admin, sssi, method="PUT", id="plots")
    tile = httpx.get(f"{b}/tiles/plots/{TILE}.mvt", timeout=10)
    assert tile.status_code == 200
    assert tile.headers["etag"] != tile_b.headers["etag"]
    assert len(features(tile.content)) == 2  # the SSSIs, not the 35 allotments
    assert tile.headers["etag"] == httpx.get(f"{a}/tiles/plots/{TILE}.mvt").headers["etag"]
    stale = {"If-None-Match": tile_b.headers["etag"]}  # a client holding the old tile
    assert httpx.get(f"{b}/tiles/plots/{TILE}.mvt", headers=stale).status_code == 200
    old = {"If-None-Match": items.headers["etag"]}
    fresh = httpx.get(f"{b}/collections/plots/items", headers=old, timeout=10)
    assert fresh.status_code == 200 and fresh.json()["numberMatched"] == 2
    assert collection.json()["layerVersion"] == 1
    assert httpx.get(f"{b}/collections/plots").json()["layerVersion"] == 2

    # ---- other details
    r = httpx.patch(f"{a}/collections/plots", json={"title": "Sites of science"}, headers=admin)
    assert r.status_code == 200, r.text
    within(
        lambda: httpx.get(f"{b}/collections/plots").json().get("title") == "Sites of science",
        "B shows a title changed on A",
    )

    # ---- visibility: made private on A, B stops serving it (its cached tile too)
    r = httpx.patch(f"{a}/collections/plots", json={"visibility": "private"}, headers=admin)
    assert r.status_code == 200, r.text
    within(lambda: status(f"{b}/collections/plots") == 404, "B hides a layer made private")
    assert status(f"{b}/tiles/plots/{TILE}.mvt") == 404
    assert status(f"{b}/collections/plots/items") == 404

    # ---- a share link made on A opens the layer on B; revoked on A, it stops on B
    r = httpx.patch(f"{a}/collections/plots", json={"visibility": "link"}, headers=admin)
    assert r.status_code == 200, r.text
    link = httpx.post(f"{a}/collections/plots/links", headers=admin).json()
    opened = f"{b}/collections/plots?link={link['link']}"
    within(lambda: status(opened) == 200, "B opens a share link made on A")
    assert status(opened) == 200  # B has just looked the link up (and keeps it a moment)
    r = httpx.delete(f"{a}/collections/plots/links/{link['id']}", headers=admin)
    assert r.status_code == 204, r.text
    within(lambda: status(opened) == 404, "B refuses a share link revoked on A")

    # ---- a member removed on A loses the layer on B
    r = httpx.post(f"{a}/groups", json={"name": "growers", "title": "Growers"}, headers=admin)
    assert r.status_code == 201, r.text
    cai = bearer(make_token(settings, "cai", admin=False, scope="read"))
    r = httpx.put(f"{a}/groups/growers/members/cai", json={"role": "viewer"}, headers=admin)
    assert r.status_code == 200, r.text
    r = httpx.patch(
        f"{a}/collections/plots", json={"group": "growers", "visibility": "group"}, headers=admin
    )
    assert r.status_code == 200, r.text
    seen = f"{b}/collections/plots"
    within(lambda: status(seen, cai) == 200, "B lets a new group member see the layer")
    assert status(seen, cai) == 200  # B has just looked cai up (and keeps it a moment)
    r = httpx.delete(f"{a}/groups/growers/members/cai", headers=admin)
    assert r.status_code in (200, 204), r.text
    within(lambda: status(seen, cai) == 404, "B refuses a member removed on A")

    # ---- a delete through A
    r = httpx.patch(f"{a}/collections/plots", json={"visibility": "public"}, headers=admin)
    assert r.status_code == 200, r.text
    within(lambda: status(f"{b}/tiles/plots/{TILE}.mvt") == 200, "B serves it public again")
    assert httpx.delete(f"{a}/collections/plots", headers=admin).status_code == 204
    within(lambda: status(f"{b}/collections/plots") == 404, "B forgets a layer deleted on A")
    assert status(f"{b}/tiles/plots/{TILE}.mvt") == 404
    assert status(f"{b}/collections/plots/items") == 404


def test_instances_sharing_one_data_folder(pg_cluster, real_data, tmp_path: Path):
    """The layout of docs/deploy.md: one data folder for all instances, so an upload's job
    is followed through any instance and a raster uploaded through one is drawn by all."""
    url = pg_cluster.new_database("shared")
    settings = Settings(data_dir=tmp_path / "data", database_url=url)
    settings.data_dir.mkdir()
    admin = bearer(make_token(settings))
    dem = real_data / "dem_os_terrain50" / "trafford_os_terrain50_dtm_50m_bng.tif"
    with (
        live.serve(settings.data_dir, database_url=url) as a,
        live.serve(settings.data_dir, database_url=url) as b,
    ):
        with dem.open("rb") as fh:
            r = httpx.post(
                f"{a}/collections",
                files={"file": (dem.name, fh)},
                data={"id": "dem", "licence": "OGL-UK-3.0", "visibility": "public"},
                headers=admin,
                timeout=60,
            )
        assert r.status_code == 202, r.text
        job = urljoin(b + "/", r.headers["location"].split("/", 3)[-1])  # asked of B
        deadline = time.monotonic() + 60
        while (state := httpx.get(job, headers=admin).json())["status"] not in (
            "successful",
            "failed",
        ):
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        assert state["status"] == "successful", state
        png = httpx.get(f"{b}/tiles/dem/13/4042/2652.png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_two_workers_on_one_geopackage(real_data, tmp_path: Path):
    """``serve --workers 2`` on a GeoPackage: uploads run in both at once, a job is followed
    through either worker, and a share link revoked through one stops working in both
    within a second."""
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    admin = bearer(make_token(settings))
    plots = real_data / "allotments" / "trafford_allotments.geojson"
    sssi = real_data / "designations" / "trafford_sites_of_special_scientific_interest.geojson"
    with live.serve(settings.data_dir, workers=2) as base:
        # two uploads at once (each worker runs its own): SQLite's locks keep the writers of
        # the one file apart across processes, and both are stored
        with ThreadPoolExecutor(2) as pool:
            both = [
                pool.submit(upload, base, admin, path, id=name, licence="OGL-UK-3.0")
                for path, name in ((plots, "first"), (sssi, "second"))
            ]
            for done in both:
                done.result()
        for name, count in (("first", 35), ("second", 2)):
            meta = httpx.get(f"{base}/collections/{name}", headers=admin).json()
            assert meta["featureCount"] == count
        job = upload(base, admin, plots, id="plots", licence="OGL-UK-3.0", visibility="link")
        # each request on a fresh connection: the two workers take turns accepting them
        assert {status(job, admin) for _ in range(20)} == {200}
        link = httpx.post(f"{base}/collections/plots/links", headers=admin).json()
        opened = f"{base}/collections/plots?link={link['link']}"
        assert {status(opened) for _ in range(20)} == {200}  # both have looked it up
        r = httpx.delete(f"{base}/collections/plots/links/{link['id']}", headers=admin)
        assert r.status_code == 204, r.text
        # each check asks several times, so that both workers are asked
        within(
            lambda: {status(opened) for _ in range(6)} == {404},
            "both workers refuse a revoked link",
            seconds=WITHIN_S + 0.2,  # the six requests of the last check take time too
        )

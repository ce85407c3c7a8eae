"""Uploads over HTTP: background ingestion with job status, replace, change, delete,
the bearer token, the size limit, and files that are not geodata."""

from __future__ import annotations

import time

import pytest

from tests.api.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _wait(client, location, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(location).json()
        if job["status"] in ("successful", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job did not finish: {job}")


def _upload(client, path, **form):
    with open(path, "rb") as fh:
        return client.post("/collections", files={"file": (path.name, fh)}, data=form, headers=AUTH)


def test_upload_runs_as_a_job_and_serves_the_layer(write_client, real_data):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    r = _upload(write_client, src, id="plots", licence="OGL-UK-3.0", attribution="Trafford")
    assert r.status_code == 202, r.text
    job = _wait(write_client, r.headers["location"])
    assert job["status"] == "successful", job
    assert job["layers"] == ["plots"] and job["progress"] == 35
    items = write_client.get("/collections/plots/items").json()
    assert items["numberMatched"] == 35 and items["license"] == "OGL-UK-3.0"


def test_bng_shapefile_upload_is_reprojected(write_client, real_data):
    src = real_data / "flood_risk_rofrs" / "trafford_rofrs_2018_bng_shapefile.zip"
    r = _upload(write_client, src, id="flood_bng", licence="OGL-UK-3.0")
    job = _wait(write_client, r.headers["location"])
    assert job["status"] == "successful", job
    meta = write_client.get("/collections/flood_bng").json()
    # SOURCES.md: the borough is lon -2.4784 .. -2.2530, lat 53.3574 .. 53.4804
    assert meta["extent"]["spatial"]["bbox"][0] == pytest.approx(
        [-2.47845, 53.35741, -2.25369, 53.48035], abs=2e-3
    )
    assert meta["featureCount"] == 1494


def test_replace_bumps_version_and_changes_etag(write_client, real_data):
    trees = real_data / "allotments" / "trafford_allotments.csv"
    first = _upload(write_client, trees, id="sites", licence="OGL-UK-3.0")
    assert _wait(write_client, first.headers["location"])["status"] == "successful"
    before = write_client.get("/collections/sites/items")
    assert before.json()["numberMatched"] == 35
    with open(
        real_data / "designations" / "trafford_sites_of_special_scientific_interest.geojson", "rb"
    ) as fh:
        r = write_client.put(
            "/collections/sites", files={"file": ("sssi.geojson", fh)}, headers=AUTH
        )
    assert r.status_code == 202
    assert _wait(write_client, r.headers["location"])["status"] == "successful"
    after = write_client.get(
        "/collections/sites/items", headers={"If-None-Match": before.headers["etag"]}
    )
    assert after.status_code == 200 and after.json()["numberMatched"] == 2
    assert write_client.get("/collections/sites").json()["layerVersion"] == 2


def test_patch_and_delete(write_client, real_data):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    _wait(
        write_client,
        _upload(write_client, src, id="temp", licence="OGL-UK-3.0").headers["location"],
    )
    r = write_client.patch("/collections/temp", json={"visibility": "private"}, headers=AUTH)
    assert r.status_code == 200
    assert write_client.get("/collections/temp").status_code == 404  # anonymous: hidden now
    assert write_client.get("/collections/temp", headers=AUTH).status_code == 200
    assert write_client.delete("/collections/temp", headers=AUTH).status_code == 204
    assert write_client.get("/collections/temp", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}]
)
def test_writes_need_the_token(write_client, real_data, headers):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    with open(src, "rb") as fh:
        r = write_client.post("/collections", files={"file": (src.name, fh)}, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "permission-denied"
    assert write_client.delete("/collections/anything", headers=headers).status_code == 401


def test_not_geodata_is_refused_with_the_error_body(write_client, tmp_path):
    pdf = tmp_path / "minutes.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + b"x" * 1000)
    r = _upload(write_client, pdf, licence="OGL-UK-3.0")
    assert 400 <= r.status_code < 500 and set(r.json()) == {"code", "description"}
    text = tmp_path / "notes.geojson"
    text.write_text("this is not json")
    r = _upload(write_client, text, licence="OGL-UK-3.0")
    assert 400 <= r.status_code < 500 and set(r.json()) == {"code", "description"}
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert _upload(write_client, empty).status_code == 400


def test_size_limit(write_client, tmp_path):
    big = tmp_path / "big.csv"  # write_settings allow 5 MB
    big.write_bytes(b"lon,lat\n" + b"-2.3,53.4\n" * 600_000)
    r = _upload(write_client, big, licence="OGL-UK-3.0")
    assert r.status_code == 413 and r.json()["code"] == "too-large"


def test_bad_ids_and_existing_layers(write_client, real_data):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    assert _upload(write_client, src, id="Bad Id!").status_code == 400
    _wait(
        write_client, _upload(write_client, src, id="dup", licence="OGL-UK-3.0").headers["location"]
    )
    r = _upload(write_client, src, id="dup", licence="OGL-UK-3.0")
    assert r.status_code == 409 and r.json()["code"] == "layer-exists"
    assert write_client.get("/jobs/not-a-job").status_code == 404


def test_refused_before_the_body_is_read(write_client):
    """No token, or a declared size over the limit: refused from the headers alone
    (the declared length is far larger than the empty body actually sent)."""
    r = write_client.post("/collections", headers={"Content-Length": "999999999"}, content=b"")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    big = str(50 * 1024 * 1024)  # write_settings allow 5 MB
    r = write_client.post("/collections", headers={**AUTH, "Content-Length": big}, content=b"")
    assert r.status_code == 413 and r.json()["code"] == "too-large"


# ---- nothing an owner set is lost (issue 9); on both stores (store_backend) ----------------------
def _put(client, layer_id, path, **form):
    with open(path, "rb") as fh:
        return client.put(
            f"/collections/{layer_id}", files={"file": (path.name, fh)}, data=form, headers=AUTH
        )


def test_put_keeps_the_details_and_the_job_says_what_it_kept(
    write_client, real_data, store_backend
):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    details = {"title": "Allotments", "kind": "open", "attribution": "Trafford Council"}
    r = _upload(write_client, src, id="plots", licence="OGL-UK-3.0", **details)
    assert _wait(write_client, r.headers["location"])["status"] == "successful"
    # a new version with nothing else said (empty fields, as a form sends them, say nothing)
    r = _put(write_client, "plots", src, title="", licence="", attribution="")
    assert r.status_code == 202, r.text
    job = _wait(write_client, r.headers["location"])
    assert job["status"] == "successful", job
    assert "Kept from version 1" in job["message"] and "'OGL-UK-3.0'" in job["message"]
    meta = write_client.get("/collections/plots").json()  # anonymous: still public
    assert (meta["title"], meta["license"], meta["attribution"], meta["layerVersion"]) == (
        "Allotments", "OGL-UK-3.0", "Trafford Council", 2,
    )  # fmt: skip
    # new values given are used, in SPDX spelling
    r = _put(write_client, "plots", src, licence="cc-by-4.0", title="Plots")
    assert _wait(write_client, r.headers["location"])["status"] == "successful"
    meta = write_client.get("/collections/plots").json()
    assert (meta["title"], meta["license"], meta["attribution"]) == (
        "Plots", "CC-BY-4.0", "Trafford Council",
    )  # fmt: skip


def test_put_refuses_to_turn_a_vector_layer_into_a_raster(
    write_client, real_data, tmp_path, store_backend
):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    src = real_data / "allotments" / "trafford_allotments.geojson"
    r = _upload(write_client, src, id="sites", licence="OGL-UK-3.0")
    assert _wait(write_client, r.headers["location"])["status"] == "successful"
    grid = tmp_path / "heights.tif"
    with rasterio.open(
        grid, "w", driver="GTiff", width=8, height=8, count=1, dtype="float32",
        crs="EPSG:27700", transform=from_origin(378000, 395000, 50, 50),
    ) as out:  # fmt: skip
        out.write(np.ones((8, 8), dtype=np.float32), 1)
    r = _put(write_client, "sites", grid)
    assert r.status_code == 400 and "allow_type_change" in r.json()["description"]
    assert write_client.get("/collections/sites").json()["layerVersion"] == 1
    r = _put(write_client, "sites", grid, allow_type_change="true")
    assert r.status_code == 202
    job = _wait(write_client, r.headers["location"])
    assert job["status"] == "successful", job
    assert write_client.get("/collections/sites").json()["layerVersion"] == 2


def test_licences_and_ids_are_checked_over_http(write_client, real_data, store_backend):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    for licence in (" ", "\t", "Open Government Licence", "MIT AND"):
        r = _upload(write_client, src, id="bad", licence=licence)
        assert r.status_code == 400 and "OGL-UK-3.0" in r.json()["description"], licence
    # public without any licence is a contradiction, refused in words
    r = _upload(write_client, src, id="bad", licence="", visibility="public")
    assert r.status_code == 400 and "licence" in r.json()["description"]
    for reserved in ("landexplorer_layers", "gpkg_contents", "rtree_x", "sqlite_master"):
        r = _upload(write_client, src, id=reserved, licence="OGL-UK-3.0")
        assert r.status_code == 400 and "own tables" in r.json()["description"], reserved
    assert write_client.get("/collections", headers=AUTH).json()["collections"] == []
    # "not decided yet": no licence, private
    r = _upload(write_client, src, id="undecided", licence="")
    assert _wait(write_client, r.headers["location"])["status"] == "successful"
    assert write_client.get("/collections/undecided").status_code == 404
    r = write_client.patch("/collections/undecided", json={"licence": " "}, headers=AUTH)
    assert r.status_code == 400 and "blank" in r.json()["description"]
    r = write_client.patch("/collections/undecided", json={"licence": "odbl-1.0"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["licence"] == "ODbL-1.0"
    meta = write_client.get("/collections/undecided", headers=AUTH).json()
    assert meta["license"] == "ODbL-1.0"  # still private until made public: nothing implied
    assert write_client.get("/collections/undecided").status_code == 404

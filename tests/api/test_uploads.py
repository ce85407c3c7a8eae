"""Uploads over HTTP: background ingestion with job status, replace, change, delete,
who may write (signed in, the policy), the size limit, and files that are not geodata."""

from __future__ import annotations

import time

import pytest

from tests.people import bearer, make_token


def _wait(client, auth, location, timeout=60):
    """The finished job (jobs are their uploader's to follow, so ``auth`` asks)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(location, headers=auth).json()
        if job["status"] in ("successful", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job did not finish: {job}")


def _upload(client, auth, path, **form):
    with open(path, "rb") as fh:
        return client.post("/collections", files={"file": (path.name, fh)}, data=form, headers=auth)


def test_upload_runs_as_a_job_and_serves_the_layer(write_client, auth, real_data):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    r = _upload(
        write_client, auth, src, id="plots", licence="OGL-UK-3.0", attribution="Trafford",
        visibility="public",
    )  # fmt: skip
    assert r.status_code == 202, r.text
    job = _wait(write_client, auth, r.headers["location"])
    assert job["status"] == "successful", job
    assert job["layers"] == ["plots"] and job["progress"] == 35
    items = write_client.get("/collections/plots/items").json()  # public: anyone reads it
    assert items["numberMatched"] == 35 and items["license"] == "OGL-UK-3.0"
    # the job is its uploader's to follow: not anyone's who learns its address
    assert write_client.get(r.headers["location"]).status_code == 401


def test_an_upload_starts_private_and_belongs_to_its_uploader(write_client, auth, real_data):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    r = _upload(write_client, auth, src, id="plots", licence="OGL-UK-3.0")
    assert _wait(write_client, auth, r.headers["location"])["status"] == "successful"
    assert write_client.get("/collections/plots").status_code == 404  # not revealed
    assert write_client.get("/collections/plots/items").status_code == 404
    meta = write_client.get("/collections/plots", headers=auth).json()
    assert meta["featureCount"] == 35


def test_bng_shapefile_upload_is_reprojected(write_client, auth, real_data):
    src = real_data / "flood_risk_rofrs" / "trafford_rofrs_2018_bng_shapefile.zip"
    r = _upload(write_client, auth, src, id="flood_bng", licence="OGL-UK-3.0")
    job = _wait(write_client, auth, r.headers["location"])
    assert job["status"] == "successful", job
    meta = write_client.get("/collections/flood_bng", headers=auth).json()
    # SOURCES.md: the borough is lon -2.4784 .. -2.2530, lat 53.3574 .. 53.4804
    assert meta["extent"]["spatial"]["bbox"][0] == pytest.approx(
        [-2.47845, 53.35741, -2.25369, 53.48035], abs=2e-3
    )
    assert meta["featureCount"] == 1494


def test_replace_bumps_version_and_changes_etag(write_client, auth, real_data):
    trees = real_data / "allotments" / "trafford_allotments.csv"
    first = _upload(
        write_client, auth, trees, id="sites", licence="OGL-UK-3.0", visibility="public"
    )
    assert _wait(write_client, auth, first.headers["location"])["status"] == "successful"
    before = write_client.get("/collections/sites/items")
    assert before.json()["numberMatched"] == 35
    with open(
        real_data / "designations" / "trafford_sites_of_special_scientific_interest.geojson", "rb"
    ) as fh:
        r = write_client.put(
            "/collections/sites", files={"file": ("sssi.geojson", fh)}, headers=auth
        )
    assert r.status_code == 202
    assert _wait(write_client, auth, r.headers["location"])["status"] == "successful"
    after = write_client.get(
        "/collections/sites/items", headers={"If-None-Match": before.headers["etag"]}
    )
    assert after.status_code == 200 and after.json()["numberMatched"] == 2
    assert write_client.get("/collections/sites").json()["layerVersion"] == 2


def test_patch_and_delete(write_client, auth, real_data):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    _wait(
        write_client,
        auth,
        _upload(
            write_client, auth, src, id="temp", licence="OGL-UK-3.0", visibility="public"
        ).headers["location"],
    )
    assert write_client.get("/collections/temp").status_code == 200  # public: anyone
    r = write_client.patch("/collections/temp", json={"visibility": "private"}, headers=auth)
    assert r.status_code == 200
    assert write_client.get("/collections/temp").status_code == 404  # anonymous: hidden now
    assert write_client.get("/collections/temp", headers=auth).status_code == 200
    assert write_client.delete("/collections/temp", headers=auth).status_code == 204
    assert write_client.get("/collections/temp", headers=auth).status_code == 404


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "not-signed-in"),
        ({"Authorization": "Bearer wrong"}, "invalid-token"),
        ({"Authorization": "Bearer lxt_" + "x" * 43}, "invalid-token"),
        ({"Authorization": "Basic x"}, "not-signed-in"),
    ],
)
def test_writes_need_signing_in(write_client, auth, real_data, headers, code):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    with open(src, "rb") as fh:
        r = write_client.post("/collections", files={"file": (src.name, fh)}, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == code, r.text
    assert "token" in r.json()["description"]  # says what to send
    assert write_client.delete("/collections/anything", headers=headers).status_code == 401
    assert write_client.get("/collections", headers=auth).json()["collections"] == []


def _refused(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "description"}
    for word in words:
        assert word in body["description"], body


def test_who_may_write_what(write_client, auth, write_settings, real_data):
    """A read-only token writes nothing; a contributor adds layers to their own group only
    and changes only their own; another group's layer is not theirs to change (403 when
    they can see it, 404 when they cannot). Nothing refused changes anything."""
    src = real_data / "allotments" / "trafford_allotments.geojson"
    reader = bearer(make_token(write_settings, "reader", admin=False, scope="read"))
    growers = {"growers": "contributor"}
    ann = bearer(make_token(write_settings, "ann", admin=False, groups=growers))
    bob = bearer(make_token(write_settings, "bob", admin=False, groups=growers))
    cat = bearer(make_token(write_settings, "cat", admin=False, groups={"walkers": "contributor"}))

    _refused(_upload(write_client, reader, src, id="by_reader"), 403, "read-only")
    _refused(_upload(write_client, cat, src, id="in_growers", group="growers"), 403, "growers")
    # ann's upload goes into her only group, growers; one public, one private
    for layer_id, visibility in (("plots", "public"), ("notes", "private")):
        r = _upload(
            write_client, ann, src, id=layer_id, licence="OGL-UK-3.0", visibility=visibility
        )
        assert r.status_code == 202, r.text
        assert _wait(write_client, ann, r.headers["location"])["status"] == "successful"
    meta = write_client.get("/collections/plots", headers=auth).json()
    assert meta["layerVersion"] == 1

    change = {"title": "Taken over"}
    _refused(write_client.patch("/collections/plots", json=change, headers=reader), 403, "read")
    _refused(write_client.patch("/collections/plots", json=change, headers=bob), 403, "own")
    _refused(write_client.patch("/collections/plots", json=change, headers=cat), 403)
    _refused(write_client.delete("/collections/plots", headers=cat), 403)
    _refused(write_client.delete("/collections/notes", headers=cat), 404)  # not revealed
    _refused(write_client.patch("/collections/notes", json=change, headers=cat), 404)
    with open(src, "rb") as fh:
        r = write_client.put("/collections/plots", files={"file": (src.name, fh)}, headers=cat)
    _refused(r, 403)
    after = write_client.get("/collections/plots", headers=auth).json()
    assert (after["title"], after["layerVersion"]) == (meta["title"], 1)
    ids = {c["id"] for c in write_client.get("/collections", headers=auth).json()["collections"]}
    assert ids == {"plots", "notes"}

    # the owner may
    r = write_client.patch("/collections/plots", json=change, headers=ann)
    assert r.status_code == 200, r.text
    assert write_client.get("/collections/plots").json()["title"] == "Taken over"


def test_not_geodata_is_refused_with_the_error_body(write_client, auth, tmp_path):
    pdf = tmp_path / "minutes.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + b"x" * 1000)
    r = _upload(write_client, auth, pdf, licence="OGL-UK-3.0")
    assert 400 <= r.status_code < 500 and set(r.json()) == {"code", "description"}
    text = tmp_path / "notes.geojson"
    text.write_text("this is not json")
    r = _upload(write_client, auth, text, licence="OGL-UK-3.0")
    assert 400 <= r.status_code < 500 and set(r.json()) == {"code", "description"}
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert _upload(write_client, auth, empty).status_code == 400


def test_size_limit(write_client, auth, tmp_path):
    big = tmp_path / "big.csv"  # write_settings allow 5 MB
    big.write_bytes(b"lon,lat\n" + b"-2.3,53.4\n" * 600_000)
    r = _upload(write_client, auth, big, licence="OGL-UK-3.0")
    assert r.status_code == 413 and r.json()["code"] == "too-large"


def test_bad_ids_and_existing_layers(write_client, auth, real_data):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    assert _upload(write_client, auth, src, id="Bad Id!").status_code == 400
    _wait(
        write_client,
        auth,
        _upload(write_client, auth, src, id="dup", licence="OGL-UK-3.0").headers["location"],
    )
    r = _upload(write_client, auth, src, id="dup", licence="OGL-UK-3.0")
    assert r.status_code == 409 and r.json()["code"] == "layer-exists"
    assert write_client.get("/jobs/not-a-job", headers=auth).status_code == 404


def test_refused_before_the_body_is_read(write_client, auth):
    """No token, or a declared size over the limit: refused from the headers alone
    (the declared length is far larger than the empty body actually sent)."""
    r = write_client.post("/collections", headers={"Content-Length": "999999999"}, content=b"")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "signing in" in r.json()["description"]
    big = str(50 * 1024 * 1024)  # write_settings allow 5 MB
    r = write_client.post("/collections", headers={**auth, "Content-Length": big}, content=b"")
    assert r.status_code == 413 and r.json()["code"] == "too-large"


# ---- nothing an owner set is lost (issue 9); on both stores (store_backend) ----------------------
def _put(client, auth, layer_id, path, **form):
    with open(path, "rb") as fh:
        return client.put(
            f"/collections/{layer_id}", files={"file": (path.name, fh)}, data=form, headers=auth
        )


def test_put_keeps_the_details_and_the_job_says_what_it_kept(
    write_client, auth, real_data, store_backend
):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    details = {"title": "Allotments", "kind": "open", "attribution": "Trafford Council"}
    r = _upload(
        write_client, auth, src, id="plots", licence="OGL-UK-3.0", visibility="public", **details
    )
    assert _wait(write_client, auth, r.headers["location"])["status"] == "successful"
    # a new version with nothing else said (empty fields, as a form sends them, say nothing)
    r = _put(write_client, auth, "plots", src, title="", licence="", attribution="")
    assert r.status_code == 202, r.text
    job = _wait(write_client, auth, r.headers["location"])
    assert job["status"] == "successful", job
    assert "Kept from version 1" in job["message"] and "'OGL-UK-3.0'" in job["message"]
    meta = write_client.get("/collections/plots").json()  # anonymous: still public
    assert (meta["title"], meta["license"], meta["attribution"], meta["layerVersion"]) == (
        "Allotments", "OGL-UK-3.0", "Trafford Council", 2,
    )  # fmt: skip
    # new values given are used, in SPDX spelling
    r = _put(write_client, auth, "plots", src, licence="cc-by-4.0", title="Plots")
    assert _wait(write_client, auth, r.headers["location"])["status"] == "successful"
    meta = write_client.get("/collections/plots").json()
    assert (meta["title"], meta["license"], meta["attribution"]) == (
        "Plots", "CC-BY-4.0", "Trafford Council",
    )  # fmt: skip


def test_put_refuses_to_turn_a_vector_layer_into_a_raster(
    write_client, auth, real_data, tmp_path, store_backend
):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    src = real_data / "allotments" / "trafford_allotments.geojson"
    r = _upload(write_client, auth, src, id="sites", licence="OGL-UK-3.0", visibility="public")
    assert _wait(write_client, auth, r.headers["location"])["status"] == "successful"
    grid = tmp_path / "heights.tif"
    with rasterio.open(
        grid, "w", driver="GTiff", width=8, height=8, count=1, dtype="float32",
        crs="EPSG:27700", transform=from_origin(378000, 395000, 50, 50),
    ) as out:  # fmt: skip
        out.write(np.ones((8, 8), dtype=np.float32), 1)
    r = _put(write_client, auth, "sites", grid)
    assert r.status_code == 400 and "allow_type_change" in r.json()["description"]
    assert write_client.get("/collections/sites").json()["layerVersion"] == 1
    r = _put(write_client, auth, "sites", grid, allow_type_change="true")
    assert r.status_code == 202
    job = _wait(write_client, auth, r.headers["location"])
    assert job["status"] == "successful", job
    assert write_client.get("/collections/sites").json()["layerVersion"] == 2


def test_licences_and_ids_are_checked_over_http(write_client, auth, real_data, store_backend):
    src = real_data / "allotments" / "trafford_allotments.geojson"
    for licence in (" ", "\t", "Open Government Licence", "MIT AND"):
        r = _upload(write_client, auth, src, id="bad", licence=licence)
        assert r.status_code == 400 and "OGL-UK-3.0" in r.json()["description"], licence
    # public without any licence is a contradiction, refused in words
    r = _upload(write_client, auth, src, id="bad", licence="", visibility="public")
    assert r.status_code == 400 and "licence" in r.json()["description"]
    for reserved in ("landexplorer_layers", "gpkg_contents", "rtree_x", "sqlite_master"):
        r = _upload(write_client, auth, src, id=reserved, licence="OGL-UK-3.0")
        assert r.status_code == 400 and "own tables" in r.json()["description"], reserved
    assert write_client.get("/collections", headers=auth).json()["collections"] == []
    # "not decided yet": no licence, private
    r = _upload(write_client, auth, src, id="undecided", licence="")
    assert _wait(write_client, auth, r.headers["location"])["status"] == "successful"
    assert write_client.get("/collections/undecided").status_code == 404
    r = write_client.patch("/collections/undecided", json={"licence": " "}, headers=auth)
    assert r.status_code == 400 and "blank" in r.json()["description"]
    r = write_client.patch("/collections/undecided", json={"licence": "odbl-1.0"}, headers=auth)
    assert r.status_code == 200 and r.json()["licence"] == "ODbL-1.0"
    meta = write_client.get("/collections/undecided", headers=auth).json()
    assert meta["license"] == "ODbL-1.0"  # still private until made public: nothing implied
    assert write_client.get("/collections/undecided").status_code == 404

"""OGC API - Features Part 4 on both stores: create, replace, update (merge patch) and
delete through HTTP, with ETags and If-Match, the bad inputs a volunteer or a client can
send (each a plain-words 4xx that stores nothing), who may edit, and two clients racing
on one feature (exactly one wins; the other gets 412 and the winner's version)."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
import shapely.geometry

from tests.edit.conftest import LAYER, POINTS, World

ITEMS = f"/collections/{LAYER}/items"
PART4 = "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/"

SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [[-2.33, 53.42], [-2.32, 53.42], [-2.32, 53.43], [-2.33, 53.43], [-2.33, 53.42]]
    ],
}


def feature(name: str = "New orchard", geometry: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry or SQUARE, "properties": {"name": name}}


def read(world: World, fid: int, who: str = "ada", layer: str = LAYER) -> Any:
    r = world.get(f"/collections/{layer}/items/{fid}", who)
    assert r.status_code == 200, r.text
    return r


def stored(world: World, layer: str = LAYER) -> Any:
    """Everything a refused request must leave alone: the entry and every feature."""
    store = world.client.app.state.store  # type: ignore[attr-defined]
    entry = store.get(layer)
    return entry.version, entry.feature_count, store.read_arrow(layer).to_pylist()


def test_conformance_names_part_4(world: World) -> None:
    classes = world.get("/conformance").json()["conformsTo"]
    for name in ("create-replace-delete", "update", "features"):
        assert PART4 + name in classes


def test_create_read_replace_patch_delete(world: World) -> None:
    before = world.client.app.state.store.get(LAYER)  # type: ignore[attr-defined]
    r = world.send("POST", ITEMS, "ora", json=feature())
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    assert location.startswith("http://testserver/collections/plots/items/")
    fid = int(location.rsplit("/", 1)[1])
    assert fid == 36  # after the 35 features loaded
    created = r.json()
    assert created["properties"] == {"name": "New orchard", "osm_id": None}
    assert created["geometry"]["type"] == "MultiPolygon"  # made to fit the layer
    # the answer's ETag is the one a GET gives, and every GET the same
    got = read(world, fid)
    assert got.headers["etag"] == r.headers["etag"] == read(world, fid).headers["etag"]
    assert got.json()["properties"] == created["properties"]
    after = world.client.app.state.store.get(LAYER)  # type: ignore[attr-defined]
    assert after.version == before.version + 1 and after.feature_count == 36

    # PUT replaces the whole feature: a column left out is empty
    put = world.send(
        "PUT", f"{ITEMS}/{fid}", "ora", json={**feature("Renamed"), "properties": {"osm_id": "7"}},
        headers={"If-Match": got.headers["etag"]},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    assert put.json()["properties"] == {"name": None, "osm_id": "7"}
    assert put.headers["etag"] != got.headers["etag"]

    # PATCH merges: properties given change, the rest stay; a geometry replaces the old
    patch = world.send(
        "PATCH", f"{ITEMS}/{fid}", "ora", json={"properties": {"name": "Patched"}},
        headers={"If-Match": put.headers["etag"], "Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert patch.status_code == 200, patch.text
    assert patch.json()["properties"] == {"name": "Patched", "osm_id": "7"}
    assert read(world, fid).json()["properties"] == {"name": "Patched", "osm_id": "7"}
    shifted = {
        "type": "Polygon",
        "coordinates": [[[-2.30, 53.40], [-2.29, 53.40], [-2.29, 53.41], [-2.30, 53.40]]],
    }
    geo = world.send(
        "PATCH", f"{ITEMS}/{fid}", "ora", json={"geometry": shifted},
        headers={"If-Match": patch.headers["etag"]},
    )  # fmt: skip
    assert geo.status_code == 200, geo.text
    ring = geo.json()["geometry"]["coordinates"][0][0]
    assert ring[0] == [-2.30, 53.40] and geo.json()["properties"]["name"] == "Patched"

    # the items list and a bbox query see the edit
    found = world.get(f"{ITEMS}?bbox=-2.301,53.399,-2.289,53.411").json()["features"]
    assert fid in [f["id"] for f in found]

    # DELETE
    gone = world.send("DELETE", f"{ITEMS}/{fid}", "ora", headers={"If-Match": geo.headers["etag"]})
    assert gone.status_code == 204, gone.text
    assert world.get(f"{ITEMS}/{fid}").status_code == 404
    final = world.client.app.state.store.get(LAYER)  # type: ignore[attr-defined]
    assert final.feature_count == 35 and final.version == before.version + 5


def test_every_column_type_on_a_point_layer(world: World) -> None:
    props = {
        "name": "Hale orchard", "planted": "2022-02-03", "trees": 40, "area_ha": 1.25,
        "organic": True, "surveyed": "2025-03-04T05:06:07Z",
    }  # fmt: skip
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-2.34, 53.41]},
            "properties": props}  # fmt: skip
    r = world.send("POST", f"/collections/{POINTS}/items", "ora", json=body)
    assert r.status_code == 201, r.text
    got = world.get(r.headers["location"].removeprefix("http://testserver")).json()
    out = got["properties"]
    assert {k: out[k] for k in ("name", "planted", "trees", "area_ha", "organic")} == {
        k: props[k] for k in ("name", "planted", "trees", "area_ha", "organic")
    }
    assert out["surveyed"] == "2025-03-04T05:06:07.000Z"
    # a time in another zone is kept as the same moment in UTC
    fid = got["id"]
    r = world.send("PATCH", f"/collections/{POINTS}/items/{fid}", "ora",
                   json={"properties": {"surveyed": "2025-06-01T10:00:00+01:00"}},
                   headers={"If-Match": r.headers["etag"]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["surveyed"] == "2025-06-01T09:00:00.000Z"
    assert got["geometry"] == {"type": "Point", "coordinates": [-2.34, 53.41]}


def test_if_match_is_needed_and_a_stale_one_refused(world: World) -> None:
    first = read(world, 1)
    before = stored(world)
    for method in ("PUT", "PATCH", "DELETE"):
        body = feature() if method == "PUT" else {"properties": {"name": "x"}}
        r = world.send(method, f"{ITEMS}/1", "ora", json=None if method == "DELETE" else body)
        assert r.status_code == 428, (method, r.text)
        assert r.json()["code"] == "if-match-required"
        assert "If-Match" in r.json()["description"]
    assert stored(world) == before
    ok = world.send("PATCH", f"{ITEMS}/1", "ora", json={"properties": {"name": "Mine"}},
                    headers={"If-Match": first.headers["etag"]})  # fmt: skip
    assert ok.status_code == 200
    after_win = stored(world)
    for method in ("PUT", "PATCH", "DELETE"):
        body = feature() if method == "PUT" else {"properties": {"name": "Theirs"}}
        r = world.send(method, f"{ITEMS}/1", "ora", json=None if method == "DELETE" else body,
                       headers={"If-Match": first.headers["etag"]})  # fmt: skip
        assert r.status_code == 412, (method, r.text)
        assert r.json()["code"] == "changed"
        assert r.json()["feature"]["properties"]["name"] == "Mine"  # the current version
        assert r.headers["etag"] == ok.headers["etag"]
        assert "someone else" in r.json()["description"]
    assert stored(world) == after_win
    # a GET in another CRS names the same version for If-Match
    other = world.get(f"{ITEMS}/1?crs=http://www.opengis.net/def/crs/EPSG/0/27700")
    assert other.headers["etag"] != ok.headers["etag"]
    r = world.send("PATCH", f"{ITEMS}/1", "ora", json={"properties": {"name": "Via BNG"}},
                   headers={"If-Match": other.headers["etag"]})  # fmt: skip
    assert r.status_code == 200, r.text
    # the tag as a compressing proxy passes it on (weak) names the same version
    now = read(world, 1)
    r = world.send("PATCH", f"{ITEMS}/1", "ora", json={"properties": {"name": "Via a proxy"}},
                   headers={"If-Match": "W/" + now.headers["etag"]})  # fmt: skip
    assert r.status_code == 200, r.text
    # If-None-Match with the feature's ETag is a 304
    now = read(world, 1)
    assert (
        world.get(f"{ITEMS}/1", headers={"If-None-Match": now.headers["etag"]}).status_code == 304
    )


def test_two_clients_race_on_one_feature(world: World) -> None:
    """Both read the same version, both send a change at once: exactly one is made, the
    other is told 412 with the winner's version; the history holds the winner's only."""
    tag = read(world, 2).headers["etag"]
    results: dict[str, Any] = {}
    start = threading.Barrier(2)

    def edit(name: str) -> None:
        start.wait()
        results[name] = world.send(
            "PATCH", f"{ITEMS}/2", "ora", json={"properties": {"name": name}},
            headers={"If-Match": tag},
        )  # fmt: skip

    threads = [threading.Thread(target=edit, args=(n,)) for n in ("Alice's", "Bob's")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results.values())
    assert codes == [200, 412], {k: (r.status_code, r.text[:200]) for k, r in results.items()}
    winner = next(n for n, r in results.items() if r.status_code == 200)
    loser = next(r for r in results.values() if r.status_code == 412)
    assert loser.json()["feature"]["properties"]["name"] == winner
    assert loser.headers["etag"] == results[winner].headers["etag"]
    assert read(world, 2).json()["properties"]["name"] == winner
    changes = world.client.app.state.store.history(LAYER, feature_id=2)  # type: ignore[attr-defined]
    assert [c.after.properties["name"] for c in changes] == [winner]


POINT = {"type": "Point", "coordinates": [-2.3, 53.4]}
CROSSING = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
PAST_POLE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 95], [1, 0], [0, 0]]]}
BAD = [
    ("a point in a polygon layer", {**feature(), "geometry": POINT}, "holds polygons"),
    ("an unknown column", {**feature(), "properties": {"colour": "red"}}, "no column called"),
    ("a number for a text column", {**feature(), "properties": {"name": 5}}, "holds text"),
    ("no geometry", {"type": "Feature", "properties": {"name": "x"}}, "geometry is missing"),
    ("not a feature", {"type": "FeatureCollection", "features": []}, "one GeoJSON Feature"),
    ("a self-crossing outline", feature(geometry=CROSSING), "cross itself"),
    ("a latitude past the pole", feature(geometry=PAST_POLE), "latitude"),
]


@pytest.mark.parametrize(("what", "body", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_are_refused_in_plain_words(world: World, what, body, words) -> None:
    before = stored(world)
    r = world.send("POST", ITEMS, "ora", json=body)
    assert r.status_code == 400, (what, r.text)
    assert words in r.json()["description"], r.json()
    assert stored(world) == before


def test_wrong_types_on_the_point_layer(world: World) -> None:
    before = stored(world, POINTS)
    point = {"type": "Point", "coordinates": [-2.3, 53.4]}
    for props, words in (
        ({"trees": "many"}, "whole numbers"), ({"trees": 1.5}, "whole numbers"),
        ({"area_ha": "big"}, "holds numbers"), ({"organic": "yes"}, "true or false"),
        ({"planted": "last spring"}, "YYYY-MM-DD"), ({"planted": "2024-02-30"}, "calendar"),
        ({"surveyed": "tuesday"}, "dates and times"),
    ):  # fmt: skip
        body = {"type": "Feature", "geometry": point, "properties": props}
        r = world.send("POST", f"/collections/{POINTS}/items", "ora", json=body)
        assert r.status_code == 400, (props, r.text)
        assert words in r.json()["description"], (props, r.json())
    assert stored(world, POINTS) == before


def test_sizes_are_bounded_before_work(world: World) -> None:
    before = stored(world)
    # a 100,000-vertex polygon: refused (413) and nothing stored
    n = 100_000
    ring = [[-2.3 + 0.01 * (i / n), 53.4 + 0.001 * (i % 2)] for i in range(n - 1)]
    ring.append(ring[0])
    r = world.send(
        "POST", ITEMS, "ora", json=feature(geometry={"type": "Polygon", "coordinates": [ring]})
    )
    assert r.status_code == 413, r.text[:300]
    assert r.json()["code"] in ("too-large", "bad-input") and "Simplify" in r.json()["description"]
    # a body under the byte limit but over the vertex limit is counted, not built
    compact = {"type": "Polygon", "coordinates": [[[0, 0]] * 60_000]}
    r = world.send("POST", ITEMS, "ora", json=feature(geometry=compact))
    assert r.status_code == 413, r.text[:300]
    assert "points in its outlines" in r.json()["description"]
    # text past its limit
    r = world.send("POST", ITEMS, "ora", json=feature(name="x" * 20_000))
    assert r.status_code == 400 and "at most" in r.json()["description"]
    assert stored(world) == before


def test_ids_that_are_not_there(world: World) -> None:
    tag = read(world, 1).headers["etag"]
    for method in ("PUT", "PATCH", "DELETE"):
        body = (
            None
            if method == "DELETE"
            else ({"properties": {"name": "x"}} if method == "PATCH" else feature())
        )
        for fid in ("999", "abc"):
            r = world.send(method, f"{ITEMS}/{fid}", "ora", json=body, headers={"If-Match": tag})
            assert r.status_code == 404, (method, fid, r.text)
            assert "no feature" in r.json()["description"]
    r = world.send("POST", "/collections/nothing_here/items", "ora", json=feature())
    assert r.status_code == 404


def test_who_may_edit(world: World) -> None:
    """The owner, the group's contributors and stewards (and admins) may; a viewer and a
    read-only token may not; an outsider does not even see the group layer (404); signed
    out is 401. A refusal stores nothing. On a private layer, contributors who are not
    its owner see nothing to edit (404)."""
    before = stored(world)
    for who, status in (
        ("vic", 403),
        ("ora-read", 403),
        ("otto", 404),
        ("anonymous", 401),
    ):
        r = world.send("POST", ITEMS, who, json=feature())
        assert r.status_code == status, (who, r.text)
        tag = read(world, 3).headers["etag"]
        r = world.send("PATCH", f"{ITEMS}/3", who, json={"properties": {"name": "x"}},
                       headers={"If-Match": tag})  # fmt: skip
        assert r.status_code == status, (who, r.text)
        r = world.send("DELETE", f"{ITEMS}/3", who, headers={"If-Match": tag})
        assert r.status_code == status, (who, r.text)
    assert stored(world) == before
    r = world.send("POST", ITEMS, "vic", json=feature())
    assert (
        "only the owner, the group's contributors and stewards, and admins edit it"
        in (r.json()["description"])
    )
    # a contributor of the group edits the group's layer (cora does not own it)
    r = world.send("POST", ITEMS, "cora", json=feature("by cora"))
    assert r.status_code == 201, r.text
    r = world.send("DELETE", r.headers["location"].split("testserver")[-1], "cora",
                   headers={"If-Match": r.headers["etag"]})  # fmt: skip
    assert r.status_code == 204, r.text
    # a private layer: a viewer of its group does not even see it
    store = world.client.app.state.store  # type: ignore[attr-defined]
    store.update_metadata(LAYER, visibility="private")
    tag = read(world, 3, "ora").headers["etag"]
    r = world.send("PATCH", f"{ITEMS}/3", "vic", json={"properties": {"name": "x"}},
                   headers={"If-Match": tag})  # fmt: skip
    assert (
        r.status_code == 404
        and r.json()["description"] == f"There is no collection called '{LAYER}'."
    )
    assert world.send("POST", ITEMS, "cora", json=feature()).status_code == 404
    for who in ("ora", "stew", "ada"):
        r = world.send("POST", ITEMS, who, json=feature(f"by {who}"))
        assert r.status_code == 201, (who, r.text)


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def _centre(doc: dict[str, Any]) -> tuple[float, float]:
    point = shapely.geometry.shape(doc["geometry"]).representative_point()
    return point.x, point.y


def test_an_edit_redraws_only_the_tiles_it_touches(world: World) -> None:
    """Caches stay right: the items list's ETag moves, and so does every tile the edited
    feature reaches into, at every zoom; a tile it does not reach keeps its ETag and is
    answered from the cache."""
    items = world.get(ITEMS)
    edited = read(world, 1).json()
    lon, lat = _centre(edited)
    others = world.get(f"{ITEMS}?limit=100").json()["features"]
    far = max(others, key=lambda f: abs(_centre(f)[0] - lon) + abs(_centre(f)[1] - lat))
    far_lon, far_lat = _centre(far)
    assert abs(far_lon - lon) + abs(far_lat - lat) > 0.05  # tiles apart from z12 on

    def tile(z: int, at: tuple[float, float]) -> str:
        x, y = _tile_of(*at, z)
        return f"/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{x}/{y}"

    touched = [tile(z, (lon, lat)) for z in (6, 10, 12, 14, 16)]
    untouched = [tile(z, (far_lon, far_lat)) for z in (12, 14, 16)]
    assert not set(touched) & set(untouched)
    before = {path: world.get(path) for path in touched + untouched}
    assert all(r.status_code == 200 for r in before.values()), {
        p: r.status_code for p, r in before.items()
    }
    tag = read(world, 1).headers["etag"]
    r = world.send("PATCH", f"{ITEMS}/1", "ora", json={"properties": {"name": "Renamed plot"}},
                   headers={"If-Match": tag})  # fmt: skip
    assert r.status_code == 200
    again = world.get(ITEMS, headers={"If-None-Match": items.headers["etag"]})
    assert again.status_code == 200 and again.headers["etag"] != items.headers["etag"]
    for path in touched:  # drawn again at every zoom (a plot is too small to show at z6)
        now = world.get(path)
        assert now.headers["etag"] != before[path].headers["etag"], path
        if "/6/" not in path:
            assert b"Renamed plot" in now.content, path
    cache = world.client.app.state.tiles.cache  # type: ignore[attr-defined]
    hits = cache.hits
    for path in untouched:  # kept: same ETag, same bytes, from the cache, 304 to a client
        now = world.get(path)
        assert now.headers["etag"] == before[path].headers["etag"], path
        assert now.content == before[path].content
        cached = world.get(path, headers={"If-None-Match": now.headers["etag"]})
        assert cached.status_code == 304
    assert cache.hits >= hits + len(untouched)
    # a delete is an edit too: its tiles are drawn again without it
    tag = read(world, 1).headers["etag"]
    world.send("DELETE", f"{ITEMS}/1", "ora", headers={"If-Match": tag})
    assert b"Renamed plot" not in world.get(touched[-1]).content


def test_a_raster_layer_has_no_features_to_edit(world: World, real_data) -> None:
    from landexplorer.layers.ingest import IngestOptions, ingest

    store = world.client.app.state.store  # type: ignore[attr-defined]
    dem = real_data / "dem_os_terrain50" / "trafford_os_terrain50_dtm_50m_bng.tif"
    ingest(store, [dem], IngestOptions(id="terrain", licence="OGL-UK-3.0"))
    r = world.send("POST", "/collections/terrain/items", "ada", json=feature())
    assert r.status_code == 404 and "raster" in r.json()["description"]


def test_a_refused_first_edit_leaves_the_catalogue_editable(world: World) -> None:
    """The history table is made inside the first edit's transaction: a first edit that
    fails (here: a stale If-Match on a new catalogue) leaves everything as it was, and
    the next edit works."""
    tag = read(world, 12).headers["etag"]
    world.send("PATCH", f"{ITEMS}/12", "ora", json={"properties": {"name": "a"}},
               headers={"If-Match": tag + "x"})  # fmt: skip
    r = world.send("PATCH", f"{ITEMS}/12", "ora", json={"properties": {"name": "b"}},
                   headers={"If-Match": tag})  # fmt: skip
    assert r.status_code == 200, r.text


def test_bodies_that_are_not_json(world: World) -> None:
    before = stored(world)
    for content in (b"", b"{not json", b"[1, 2]"):
        r = world.send("POST", ITEMS, "ora", content=content,
                       headers={"Content-Type": "application/geo+json"})  # fmt: skip
        assert r.status_code == 400, (content, r.text)
        assert r.json()["description"]
    assert stored(world) == before


def test_an_edit_checked_against_a_replaced_version_is_refused(world: World, real_data) -> None:
    """A replace from a file between the check of a body and its write: nothing is
    written, and the caller is told to read the feature again."""
    from landexplorer.catalog.editing import Edit, FeatureState
    from landexplorer.errors import StoreBusy
    from landexplorer.layers.ingest import IngestOptions, ingest

    store = world.client.app.state.store  # type: ignore[attr-defined]
    old = store.get(LAYER)
    ingest(store, [real_data / "allotments" / "trafford_allotments.geojson"],
           IngestOptions(id=LAYER, replace=True))  # fmt: skip
    before = stored(world)
    edit = Edit("update", lambda cur: FeatureState({"name": "x"}, cur.wkb), fid=1,
                storage=old.storage)  # fmt: skip
    with pytest.raises(StoreBusy, match="replaced with a new version"):
        store.edit_feature(LAYER, edit)
    assert stored(world) == before


def test_each_accepted_edit_names_its_change(world: World) -> None:
    """``Landexplorer-Change-Id`` on a create, a patch and a delete is the id of that
    edit's row in the layer's change list (and of its event in the live feed)."""
    made = world.send("POST", ITEMS, "ora", json=feature("Named"))
    assert made.status_code == 201, made.text
    fid = int(made.headers["location"].rsplit("/", 1)[1])
    patched = world.send(
        "PATCH", f"{ITEMS}/{fid}", "ora", json={"properties": {"name": "Named again"}},
        headers={"If-Match": made.headers["etag"]},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    gone = world.send(
        "DELETE", f"{ITEMS}/{fid}", "ora", headers={"If-Match": patched.headers["etag"]}
    )
    assert gone.status_code == 204, gone.text
    ids = [int(r.headers["landexplorer-change-id"]) for r in (made, patched, gone)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    history = world.get(f"{ITEMS}/{fid}/history", "ora")
    assert history.status_code == 200, history.text
    rows = {c["id"]: c["operation"] for c in history.json()["changes"]}
    assert [rows.get(i) for i in ids] == ["create", "update", "delete"], rows

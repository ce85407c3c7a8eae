"""Every change is recorded, on both stores: a feature's history (who, when, before and
after), the layer's change list a page at a time, reverting a feature to an earlier
state (itself a recorded change), reading the layer as it was at a time (``asOf``),
the audit log, and a replace from a file that keeps the history before it."""

from __future__ import annotations

import time
from typing import Any

from landexplorer.catalog import history as hist
from tests.edit.conftest import LAYER, World
from tests.edit.test_features_edit import ITEMS, feature, read


def patch(world: World, fid: int, name: str, who: str = "ora") -> Any:
    tag = read(world, fid).headers["etag"]
    r = world.send("PATCH", f"{ITEMS}/{fid}", who, json={"properties": {"name": name}},
                   headers={"If-Match": tag})  # fmt: skip
    assert r.status_code == 200, r.text
    return r


def test_a_feature_history_says_who_when_before_and_after(world: World) -> None:
    original = read(world, 4).json()["properties"]["name"]
    patch(world, 4, "First", "ora")
    patch(world, 4, "Second", "stew")
    tag = read(world, 4).headers["etag"]
    assert world.send("DELETE", f"{ITEMS}/4", "ora", headers={"If-Match": tag}).status_code == 204
    link = next(x for x in read(world, 3).json()["links"] if x["rel"] == "version-history")
    assert link["href"] == f"http://testserver{ITEMS}/3/history"
    doc = world.get(f"{ITEMS}/4/history", "ora").json()
    assert doc["featureId"] == 4
    changes = doc["changes"]
    assert [c["operation"] for c in changes] == ["update", "update", "delete"]
    assert [c["by"] for c in changes] == ["ora", "stew", "ora"]
    assert changes[0]["before"]["properties"]["name"] == original
    assert changes[0]["after"]["properties"]["name"] == "First"
    assert changes[1]["before"]["properties"]["name"] == "First"
    assert changes[2]["after"] is None and changes[2]["before"]["properties"]["name"] == "Second"
    assert changes[0]["at"] < changes[1]["at"] < changes[2]["at"]
    assert changes[0]["layerVersion"] < changes[2]["layerVersion"]
    # a viewer of the group sees the history, without the editors' names
    seen = world.get(f"{ITEMS}/4/history", "vic").json()["changes"]
    assert [c["by"] for c in seen] == ["someone"] * 3
    # an outsider does not see the group layer at all
    assert world.get(f"{ITEMS}/4/history", "otto").status_code == 404
    assert world.get(f"{ITEMS}/999/history", "ora").status_code == 404
    # and the audit log has each edit
    access = world.client.app.state.access  # type: ignore[attr-defined]
    logged = [e for e in access.read_audit(layer=LAYER) if e.action.startswith("feature")]
    actions = sorted(e.action for e in logged)
    assert actions == ["feature delete", "feature update", "feature update"]
    assert {e.actor for e in logged} == {"ora", "stew"}


def test_the_change_list_pages(world: World) -> None:
    for i in range(5):
        patch(world, 5, f"name {i}")
    first = world.get(f"/collections/{LAYER}/changes?limit=2", "ora").json()
    assert [c["after"]["properties"]["name"] for c in first["changes"]] == ["name 0", "name 1"]
    seen = [c["id"] for c in first["changes"]]
    page = first
    while True:
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        if not nxt:
            break
        page = world.get(nxt[0]["href"].removeprefix("http://testserver"), "ora").json()
        seen += [c["id"] for c in page["changes"]]
    assert len(seen) == 5 and seen == sorted(seen)
    after = world.get(f"/collections/{LAYER}/changes?after={seen[2]}", "ora").json()
    assert [c["id"] for c in after["changes"]] == seen[3:]
    assert world.get(f"/collections/{LAYER}/changes?limit=0", "ora").status_code == 400


def test_revert_puts_a_feature_back_and_is_a_change(world: World) -> None:
    original = read(world, 6).json()
    patch(world, 6, "Wrong")
    first_id = world.get(f"{ITEMS}/6/history").json()["changes"][0]["id"]
    patch(world, 6, "Worse")
    # back to the state right after the first change
    tag = read(world, 6).headers["etag"]
    r = world.send("POST", f"{ITEMS}/6/revert", "ora", json={"change": first_id},
                   headers={"If-Match": tag})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["name"] == "Wrong"
    # a revert without If-Match of a feature that exists: 428; to a change of another: 404
    r = world.send("POST", f"{ITEMS}/6/revert", "ora", json={"change": first_id})
    assert r.status_code == 428
    r = world.send("POST", f"{ITEMS}/7/revert", "ora", json={"change": first_id},
                   headers={"If-Match": read(world, 7).headers["etag"]})  # fmt: skip
    assert r.status_code == 404
    # delete it, then bring it back as it was before anything (the first change's before
    # is not a change's result: revert to the state after a change; here the first)
    tag = read(world, 6).headers["etag"]
    world.send("DELETE", f"{ITEMS}/6", "ora", headers={"If-Match": tag})
    r = world.send("POST", f"{ITEMS}/6/revert", "ora", json={"change": first_id})
    assert r.status_code == 200, r.text
    back = read(world, 6).json()
    assert back["properties"]["name"] == "Wrong"
    assert back["geometry"] == original["geometry"]
    ops = [c["operation"] for c in world.get(f"{ITEMS}/6/history").json()["changes"]]
    assert ops == ["update", "update", "revert", "delete", "revert"]
    # who may not edit the layer (a viewer of its group) may not revert it
    r = world.send("POST", f"{ITEMS}/6/revert", "vic", json={"change": first_id},
                   headers={"If-Match": read(world, 6).headers["etag"]})  # fmt: skip
    assert r.status_code == 403


def test_the_layer_as_it_was_at_a_time(world: World) -> None:
    before_all = read(world, 8).json()
    time.sleep(0.01)
    mark = hist.stamp()
    time.sleep(0.01)
    patch(world, 8, "Changed later")
    tag = read(world, 9).headers["etag"]
    world.send("DELETE", f"{ITEMS}/9", "ora", headers={"If-Match": tag})
    new = world.send("POST", ITEMS, "ora", json=feature("Added later")).json()
    now = world.get(f"{ITEMS}?limit=100").json()
    then = world.get(f"{ITEMS}?limit=100&asOf={mark}").json()
    ids_now = [f["id"] for f in now["features"]]
    ids_then = [f["id"] for f in then["features"]]
    assert 9 in ids_then and 9 not in ids_now
    assert new["id"] in ids_now and new["id"] not in ids_then
    assert ids_then == list(range(1, 36))
    assert then["numberMatched"] == 35 and now["numberMatched"] == 35
    f8 = next(f for f in then["features"] if f["id"] == 8)
    assert f8["properties"] == before_all["properties"]
    assert f8["geometry"] == before_all["geometry"]
    # one feature as it was, or not there then
    one = world.get(f"{ITEMS}/8?asOf={mark}").json()
    assert one["properties"] == before_all["properties"] and one["asOf"] == mark
    assert world.get(f"{ITEMS}/9?asOf={mark}").json()["id"] == 9  # deleted since
    assert world.get(f"{ITEMS}/{new['id']}?asOf={mark}").status_code == 404  # added since
    assert world.get(f"{ITEMS}/10?asOf={mark}").json()["id"] == 10  # never edited
    # paging and a bbox work as they do now
    page = world.get(f"{ITEMS}?limit=5&offset=5&asOf={mark}").json()
    assert [f["id"] for f in page["features"]] == list(range(6, 11))
    bbox = ",".join(str(v) for v in (-2.4, 53.3, -2.2, 53.5))
    boxed = world.get(f"{ITEMS}?bbox={bbox}&asOf={mark}&limit=100").json()
    assert 9 in [f["id"] for f in boxed["features"]]
    # a time that is not one, and a filter with asOf: refused in words
    r = world.get(f"{ITEMS}?asOf=yesterday")
    assert r.status_code == 400 and "ISO 8601" in r.json()["description"]
    r = world.get(f"{ITEMS}?asOf={mark}&name=x")
    assert r.status_code == 400 and "filter" in r.json()["description"]
    r = world.get(f"{ITEMS}?asOf=1999-01-01T00:00:00Z")
    assert r.status_code == 400 and "did not exist" in r.json()["description"]


def test_a_replace_from_a_file_keeps_the_history(world: World, real_data) -> None:
    from landexplorer.layers.ingest import IngestOptions, ingest

    patch(world, 10, "Before the replace")
    store = world.client.app.state.store  # type: ignore[attr-defined]
    version = store.get(LAYER).version
    src = real_data / "allotments" / "trafford_allotments.geojson"
    ingest(store, [src], IngestOptions(id=LAYER, replace=True))
    assert store.get(LAYER).version == version + 1
    changes = world.get(f"/collections/{LAYER}/changes").json()["changes"]
    assert [c["operation"] for c in changes] == ["update", hist.LAYER_REPLACED]
    assert changes[1]["detail"]["fromVersion"] == version
    assert changes[0]["after"]["properties"]["name"] == "Before the replace"
    # the feature's history shows the replace too; a revert cannot reach past it
    feature_changes = world.get(f"{ITEMS}/10/history").json()["changes"]
    assert [c["operation"] for c in feature_changes] == ["update", hist.LAYER_REPLACED]
    r = world.send("POST", f"{ITEMS}/10/revert", "ora", json={"change": changes[0]["id"]},
                   headers={"If-Match": read(world, 10).headers["etag"]})  # fmt: skip
    assert r.status_code == 400 and "replaced from a file" in r.json()["description"]
    # edits go on after the replace, and asOf does not reach before it
    patch(world, 10, "After the replace")
    r = world.get(f"{ITEMS}?asOf={changes[0]['at']}")
    assert r.status_code == 400 and "replaced from a file" in r.json()["description"]


def test_a_layer_loaded_again_under_the_same_id_starts_a_new_history(world: World, real_data):
    from landexplorer.layers.ingest import IngestOptions, ingest

    patch(world, 11, "Of the old layer")
    store = world.client.app.state.store  # type: ignore[attr-defined]
    store.delete(LAYER)
    time.sleep(1.1)  # the catalogue's times are to the second
    src = real_data / "allotments" / "trafford_allotments.geojson"
    ingest(store, [src], IngestOptions(id=LAYER, licence="OGL-UK-3.0", owner="ora",
                                       group="orchard-club", visibility="group"))  # fmt: skip
    assert world.get(f"/collections/{LAYER}/changes").json()["changes"] == []
    assert world.get(f"{ITEMS}/11/history").json()["changes"] == []

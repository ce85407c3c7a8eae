"""Licences that travel and combine: SPDX expressions read and refused in words, what
combining inputs obliges, the ``licences`` block of every analysis answer and written
result, and saving a comparison as a new layer (refused for everyone to see when an
input's licence does not allow it, with nothing stored), over HTTP on both stores.

The catalogue: ``allotments`` belongs to group ``orchard-club`` (visibility ``group``,
owned by rowan, OGL-UK-3.0); ``flood_risk`` is public, its licence set per test. rowan
is a contributor of the group, olive a viewer (read-only token), sam in no group.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import shapely

from landexplorer.access.licences import (
    TERMS,
    AllOf,
    AnyOf,
    Licence,
    LicenceError,
    chosen,
    combine,
    derived_licence,
    normalise,
    parse,
    publish_refusal,
)
from landexplorer.access.spdx import COMMON
from landexplorer.analysis.export import write_result
from landexplorer.analysis.sources import Source
from landexplorer.api import create_app
from landexplorer.catalog import open_store
from landexplorer.catalog.model import normalise_licence
from landexplorer.errors import InputError
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests.access.test_clients import ALLOTMENTS, GROUP, open_access
from tests.people import bearer, make_token

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

FLOOD = "flood_risk_rofrs/trafford_rofrs_2018.geojson"
COMPARE = {"left": "allotments", "right": "flood_risk", "by": "prob_4band"}


def src(layer: str, licence: str, attribution: str = "") -> Source:
    return Source(layer, title=layer.title(), licence=licence, attribution=attribution)


# ------------------------------------------------------------------ reading expressions
@pytest.mark.parametrize(
    ("given", "spelt"),
    [
        ("OGL-UK-3.0", "OGL-UK-3.0"),
        ("ogl-uk-3.0 and odbl-1.0", "OGL-UK-3.0 AND ODbL-1.0"),
        ("(CC-BY-4.0 OR odc-by-1.0) AND cc0-1.0", "(CC-BY-4.0 OR ODC-By-1.0) AND CC0-1.0"),
        ("CC-BY-4.0 OR (ODbL-1.0 AND OGL-UK-2.0)", "CC-BY-4.0 OR ODbL-1.0 AND OGL-UK-2.0"),
        ("((PDDL-1.0))", "PDDL-1.0"),
        ("CC-BY-SA-4.0+", "CC-BY-SA-4.0+"),
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", None),
        ("licenseref-parish-survey", "LicenseRef-parish-survey"),
        ("DocumentRef-spdx-doc:LicenseRef-our-terms", "DocumentRef-spdx-doc:LicenseRef-our-terms"),
        ("  CC-BY-NC-SA-4.0 ", "CC-BY-NC-SA-4.0"),
    ],
)  # fmt: skip
def test_expressions_are_read_and_spelt_the_spdx_way(given: str, spelt: str | None) -> None:
    spelt = spelt or given
    assert normalise(given) == spelt
    assert normalise(spelt) == spelt  # and read back the same
    assert normalise_licence(given) == spelt  # what uploads and ingest store


def test_the_tree_of_an_expression() -> None:
    tree = parse("OGL-UK-3.0 AND (CC-BY-4.0 OR ODbL-1.0)")
    assert tree == AllOf(
        (Licence("OGL-UK-3.0"), AnyOf((Licence("CC-BY-4.0"), Licence("ODbL-1.0"))))
    )
    assert parse("Apache-2.0 WITH LLVM-exception") == Licence(
        "Apache-2.0", exception="LLVM-exception"
    )
    # AND binds tighter than OR, as SPDX says
    assert parse("CC0-1.0 OR CC-BY-4.0 AND ODbL-1.0") == AnyOf(
        (Licence("CC0-1.0"), AllOf((Licence("CC-BY-4.0"), Licence("ODbL-1.0"))))
    )


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("", "blank"),
        ("CC-BY-4.0 AND", "ends too soon"),
        ("(CC-BY-4.0 OR ODbL-1.0", "never closed"),
        ("CC-BY-4.0)", "never opened"),
        ("CC-BY-4.0 ODbL-1.0", "joined with AND or OR"),
        ("AND CC-BY-4.0", "where a licence id should be"),
        ("made-up-licence-2.0", "not a licence id"),
        ("MIT WITH CC-BY-4.0", "not a licence exception"),
        ("CC-BY-4.0, ODbL-1.0", "not written like a licence id"),
        ("x" * 201, "longer than 200"),
    ],
)
def test_bad_expressions_are_refused_in_words(given: str, said: str) -> None:
    with pytest.raises(LicenceError) as info:
        parse(given)
    assert said in str(info.value)
    with pytest.raises(InputError) as words:
        normalise_licence(given)
    assert "OGL-UK-3.0" in words.value.public  # with an example of what to write


def test_every_id_the_upload_form_offers_is_in_the_table() -> None:
    page = (Path(__file__).parents[2] / "landexplorer/web/static/index.html").read_text("utf-8")
    for licence in (
        "OGL-UK-3.0", "OGL-UK-2.0", "CC0-1.0", "PDDL-1.0", "CC-BY-4.0", "CC-BY-SA-4.0",
        "CC-BY-NC-4.0", "CC-BY-ND-4.0", "CC-BY-NC-SA-4.0", "ODbL-1.0", "ODC-By-1.0",
    ):  # fmt: skip
        assert licence in TERMS
        assert normalise(licence) == licence
    assert set(COMMON) == set(TERMS)  # every licence with known terms is always accepted
    offered = [v for v in TERMS if f'value="{v}"' in page]
    assert offered, "the upload form offers licences from the table"


# ------------------------------------------------------------------------- combining
def test_or_takes_the_least_demanding_choice_and_and_takes_all() -> None:
    assert [str(x) for x in chosen("CC-BY-ND-4.0 OR OGL-UK-3.0")] == ["OGL-UK-3.0"]
    assert [str(x) for x in chosen("ODbL-1.0 OR CC0-1.0")] == ["CC0-1.0"]
    assert [str(x) for x in chosen("OGL-UK-3.0 AND CC-BY-SA-4.0")] == ["OGL-UK-3.0", "CC-BY-SA-4.0"]
    # a known licence is chosen over one whose terms are not known
    assert [str(x) for x in chosen("LicenseRef-ours OR CC-BY-4.0")] == ["CC-BY-4.0"]


def test_attribution_only_inputs_may_be_published_crediting_all() -> None:
    c = combine([
        src("allotments", "OGL-UK-3.0", "Trafford Council"),
        src("trees", "CC-BY-4.0", "Tree Society"),
    ])  # fmt: skip
    assert c.publishable and c.licence == "OGL-UK-3.0 AND CC-BY-4.0"
    assert c.attribution and not (c.share_alike or c.non_commercial or c.no_derivatives)
    assert c.obligations == (
        'credit "Trafford Council" and "Tree Society" wherever you show or share it',
    )
    assert c.summary().startswith("Made from Allotments (OGL-UK-3.0) and Trees (CC-BY-4.0): credit")
    assert publish_refusal(c, "public") is None


def test_share_alike_carries_to_the_result() -> None:
    c = combine([src("a", "OGL-UK-3.0", "Council"), src("osm", "ODbL-1.0", "OpenStreetMap")])
    assert c.publishable and c.licence == "ODbL-1.0" and c.share_alike
    assert any("share alike" in o and "ODbL-1.0" in o for o in c.obligations)
    assert derived_licence(c) == "ODbL-1.0"


def test_different_share_alike_licences_cannot_be_published() -> None:
    c = combine([src("osm", "ODbL-1.0"), src("wiki", "CC-BY-SA-4.0")])
    assert not c.publishable and c.licence is None
    assert "Share-alike licences that differ cannot be combined" in c.reason
    refusal = publish_refusal(c, "public")
    assert refusal is not None and "everyone" in refusal and "ODbL-1.0" in refusal
    assert publish_refusal(c, "private") is None and publish_refusal(c, "group") is None
    assert publish_refusal(c, "link") is not None
    # stored with both licences, so the layer keeps both terms
    assert derived_licence(c) == "ODbL-1.0 AND CC-BY-SA-4.0"
    assert not combine([src("saved", "ODbL-1.0 AND CC-BY-SA-4.0")]).publishable


def test_no_derivatives_refuses_and_says_why() -> None:
    c = combine([src("a", "OGL-UK-3.0"), src("nd", "CC-BY-ND-4.0")])
    assert c.no_derivatives and not c.publishable
    assert "'nd' is under CC-BY-ND-4.0" in c.reason and "does not allow" in c.reason
    assert any(o.startswith("no derivatives") for o in c.obligations)


def test_non_commercial_combines_only_with_non_commercial_share_alike() -> None:
    ok = combine([src("nc", "CC-BY-NC-4.0"), src("ncsa", "CC-BY-NC-SA-4.0")])
    assert ok.publishable and ok.licence == "CC-BY-NC-SA-4.0" and ok.non_commercial
    assert any(o.startswith("non-commercial") for o in ok.obligations)
    bad = combine([src("nc", "CC-BY-NC-4.0"), src("sa", "CC-BY-SA-4.0")])
    assert not bad.publishable and "allows commercial use" in bad.reason
    alone = combine([src("nc", "CC-BY-NC-4.0"), src("a", "OGL-UK-3.0")])
    assert alone.publishable and alone.licence == "CC-BY-NC-4.0 AND OGL-UK-3.0"


def test_public_domain_unknown_and_missing_licences() -> None:
    pd_only = combine([src("a", "CC0-1.0"), src("b", "PDDL-1.0")])
    assert pd_only.publishable and pd_only.licence == "CC0-1.0" and not pd_only.attribution
    assert pd_only.obligations == ("no conditions: the inputs are in the public domain",)
    mixed = combine([src("a", "CC0-1.0"), src("b", "OGL-UK-3.0")])
    assert mixed.licence == "OGL-UK-3.0"
    ours = combine([src("a", "LicenseRef-parish-terms")])
    assert not ours.publishable and "does not know" in ours.reason
    assert any("check the terms of LicenseRef-parish-terms" in o for o in ours.obligations)
    none = combine([src("a", ""), src("b", "OGL-UK-3.0")])
    assert not none.publishable and "'a' has no licence" in none.reason
    assert derived_licence(none) is None
    assert "'a' has no licence: ask its owner before using it elsewhere" in none.obligations
    assert not any("public domain" in o for o in none.obligations)
    # a licence that asks for credit names the layer when no attribution was given
    uncredited = combine([src("a", "CC-BY-4.0"), src("b", "OGL-UK-3.0", "Council")])
    assert uncredited.obligations[0] == (
        "credit the source of 'a' and \"Council\" wherever you show or share it"
    )
    nothing = combine([])
    assert nothing.summary() == "Made from no layer" and not nothing.publishable
    assert nothing.obligations == ()
    # the same layer twice counts once
    assert len(combine([src("a", "OGL-UK-3.0"), src("a", "OGL-UK-3.0")]).inputs) == 1


def test_written_results_carry_the_combined_terms(tmp_path: Path) -> None:
    import geopandas as gpd

    frame = gpd.GeoDataFrame({"name": ["x"]}, geometry=[shapely.Point(-2.3, 53.4)], crs=4326)
    sources = [src("a", "OGL-UK-3.0", "Council"), src("nd", "CC-BY-ND-4.0", "Trust")]
    geo = json.loads(write_result(frame, tmp_path / "r.geojson", sources, "EPSG:27700").read_text())
    assert [i["id"] for i in geo["licences"]["inputs"]] == ["a", "nd"]
    assert geo["licences"]["no_derivatives"] and not geo["licences"]["may_publish"]
    write_result(frame, tmp_path / "r.csv", sources, "EPSG:27700")
    text = (tmp_path / "r.csv.credits.txt").read_text()
    assert 'What using it obliges: credit "Council" and "Trust"' in text
    assert "may not be published as a layer of its own" in text and "CC-BY-ND-4.0" in text
    import pyogrio

    write_result(frame, tmp_path / "r.gpkg", sources, "EPSG:27700")
    meta = pyogrio.read_info(tmp_path / "r.gpkg")["layer_metadata"]
    assert json.loads(meta["licences"])["inputs"][1]["licence"] == "CC-BY-ND-4.0"


# ------------------------------------------------------------------------ over HTTP
@dataclass
class Commons:
    client: TestClient
    settings: Settings
    rowan: dict[str, str]  # contributor of orchard-club (write)
    olive: dict[str, str]  # viewer of orchard-club (read-only token)
    sam: dict[str, str]  # in no group (write)

    def licence(self, layer: str, licence: str) -> None:
        store = open_store(self.settings)
        try:
            store.update_metadata(layer, licence=licence)
        finally:
            store.close()

    def layer_ids(self) -> set[str]:
        store = open_store(self.settings)
        try:
            return {e.id for e in store.list_layers()}
        finally:
            store.close()

    def audit(self) -> list[Any]:
        with open_access(self.settings) as access:
            return access.read_audit(limit=500)


@pytest.fixture
def commons(store_backend: str, settings: Settings, real_data: Path) -> Iterator[Commons]:
    store = open_store(settings)
    try:
        ingest(
            store,
            [real_data / ALLOTMENTS],
            IngestOptions(id="allotments", licence="OGL-UK-3.0", attribution="Trafford Council"),
        )
        ingest(
            store,
            [real_data / FLOOD],
            IngestOptions(id="flood_risk", licence="OGL-UK-3.0", attribution="Environment Agency"),
        )
        store.update_metadata("allotments", owner="rowan", group=GROUP, visibility="group")
        store.update_metadata("flood_risk", visibility="public")
    finally:
        store.close()
    rowan = make_token(settings, "rowan", admin=False, groups={GROUP: "contributor"})
    olive = make_token(settings, "olive", admin=False, scope="read", groups={GROUP: "viewer"})
    sam = make_token(settings, "sam", admin=False)
    with TestClient(create_app(settings)) as c:
        yield Commons(c, settings, bearer(rowan), bearer(olive), bearer(sam))


def save(c: Commons, who: dict[str, str], **extra: Any) -> Any:
    body = {"compare": COMPARE, "id": "allotments_flooded", **extra}
    return c.client.post("/analysis/save", json=body, headers=who)


def test_compare_answers_list_licences_and_obligations(commons: Commons) -> None:
    commons.licence("flood_risk", "ODbL-1.0")
    r = commons.client.post("/analysis/compare", json=COMPARE, headers=commons.olive)
    assert r.status_code == 200, r.text
    block = r.json()["licences"]
    assert block["inputs"] == [
        {"id": "allotments", "title": block["inputs"][0]["title"], "licence": "OGL-UK-3.0",
         "attribution": "Trafford Council"},
        {"id": "flood_risk", "title": block["inputs"][1]["title"], "licence": "ODbL-1.0",
         "attribution": "Environment Agency"},
    ]  # fmt: skip
    assert block["share_alike"] and block["may_publish"] and block["derived_licence"] == "ODbL-1.0"
    assert block["summary"].startswith("Made from ")
    assert '"Trafford Council" and "Environment Agency"' in block["summary"]
    assert "share alike" in block["summary"]


def test_overlay_and_zonal_answers_carry_the_licences_block(commons: Commons) -> None:
    commons.licence("flood_risk", "CC-BY-ND-4.0")
    body = {"left": "allotments", "right": "flood_risk", "by": "prob_4band"}
    r = commons.client.post("/analysis/overlay", json=body, headers=commons.olive)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert {row["class"] for row in doc["totals"]} == {"High", "Medium", "Low", "Very Low"}
    block = doc["licences"]
    assert [i["id"] for i in block["inputs"]] == ["allotments", "flood_risk"]
    assert block["no_derivatives"] and not block["may_publish"]
    assert "CC-BY-ND-4.0" in block["why_not"] and block["derived_licence"] is None
    assert "per_feature" not in doc
    assert (
        "per_feature"
        in commons.client.post(
            "/analysis/overlay", json={**body, "per_feature": True}, headers=commons.olive
        ).json()
    )
    unknown = {**body, "by": "no_such_column"}
    bad = commons.client.post("/analysis/overlay", json=unknown, headers=commons.olive)
    assert bad.status_code == 400 and "prob_4band" in bad.json()["description"]
    hidden = commons.client.post("/analysis/overlay", json=body, headers=commons.sam)
    assert hidden.status_code == 404 and "allotments" in hidden.json()["description"]


def test_analysis_never_uses_a_layer_the_caller_may_not_see(commons: Commons) -> None:
    c = commons.client
    for who in ({}, commons.sam):
        hidden = c.post("/analysis/compare", json=COMPARE, headers=who)
        unknown = c.post("/analysis/compare", json={**COMPARE, "left": "no_such"}, headers=who)
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json()["description"] == "There is no collection called 'allotments'."
        zonal = c.post("/analysis/zonal", json={"layer": "allotments", "raster": "x"}, headers=who)
        assert zonal.status_code == 404


def _around_allotments(c: Commons) -> dict[str, Any]:
    store = open_store(c.settings)
    try:
        box = store.get("allotments").bbox
    finally:
        store.close()
    assert box is not None
    return json.loads(shapely.to_geojson(shapely.box(*box).buffer(0.001)))


def test_a_report_never_reveals_a_layer_the_caller_may_not_see(commons: Commons) -> None:
    c = commons.client
    area = _around_allotments(commons)
    member = c.post("/analysis/report", json={"area": area}, headers=commons.olive)
    assert member.status_code == 200, member.text
    assert {x["layer"] for x in member.json()["layers"]} == {"allotments", "flood_risk"}
    count = next(x["count"] for x in member.json()["layers"] if x["layer"] == "allotments")
    assert count > 0
    for who in ({}, commons.sam):
        r = c.post("/analysis/report", json={"area": area}, headers=who)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [x["layer"] for x in body["layers"]] == ["flood_risk"]
        assert [i["id"] for i in body["licences"]["inputs"]] == ["flood_risk"]
        assert "allotments" not in r.text and "Trafford Council" not in r.text
        asked = c.post(
            "/analysis/report",
            json={"area": area, "layers": ["allotments"], "by": {"allotments": "name"}},
            headers=who,
        )
        unknown = c.post("/analysis/report", json={"area": area, "layers": ["no_such"]})
        assert asked.status_code == unknown.status_code == 404
        assert "count" not in asked.text


def test_save_keeps_the_matches_private_to_the_callers_group(commons: Commons) -> None:
    r = save(commons, commons.rowan, title="Allotments at risk of flooding")
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["visibility"] == "private" and doc["owner"] == "rowan" and doc["group"] == GROUP
    assert doc["licence"] == "OGL-UK-3.0" and doc["features"] > 0
    assert doc["attribution"] == "Trafford Council; Environment Agency"
    assert doc["licences"]["may_publish"]
    assert r.headers["location"].endswith("/collections/allotments_flooded")
    c = commons.client
    assert c.get("/collections/allotments_flooded", headers=commons.rowan).status_code == 200
    assert c.get("/collections/allotments_flooded").status_code == 404
    assert c.get("/collections/allotments_flooded", headers=commons.sam).status_code == 404
    items = c.get("/collections/allotments_flooded/items", headers=commons.rowan).json()
    assert items["numberMatched"] == doc["features"]
    (event,) = [e for e in commons.audit() if e.action == "save-analysis"]
    assert event.layer == "allotments_flooded" and event.actor == "rowan"
    # the same id again is a conflict, and nothing changes
    again = save(commons, commons.rowan)
    assert again.status_code == 409
    # it may go public: every input allows it
    up = c.patch(
        "/collections/allotments_flooded", json={"visibility": "public"}, headers=commons.rowan
    )
    assert up.status_code == 200, up.text
    assert c.get("/collections/allotments_flooded").status_code == 200


@pytest.mark.parametrize(
    ("left", "right", "why"),
    [
        ("OGL-UK-3.0", "CC-BY-ND-4.0", "does not allow sharing anything made from it"),
        ("ODbL-1.0", "CC-BY-SA-4.0", "Share-alike licences that differ cannot be combined"),
        ("OGL-UK-3.0", "LicenseRef-survey-terms", "does not know"),
    ],
)
def test_save_as_public_is_refused_when_a_licence_forbids_it(
    commons: Commons, left: str, right: str, why: str, real_data: Path
) -> None:
    commons.licence("allotments", left)
    commons.licence("flood_risk", right)
    before, events = commons.layer_ids(), len(commons.audit())
    for visibility in ("public", "link"):
        r = save(commons, commons.rowan, visibility=visibility)
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "licence-forbids"
        assert why in r.json()["description"] and "Keep it private" in r.json()["description"]
    assert commons.layer_ids() == before and len(commons.audit()) == events
    # kept private it may be saved, with both inputs' terms in its licence
    kept = save(commons, commons.rowan)
    assert kept.status_code == 201, kept.text
    assert kept.json()["licence"] == f"{left} AND {right}"
    assert not kept.json()["licences"]["may_publish"]
    c = commons.client
    for changes in ({"visibility": "public"}, {"visibility": "link"}, {"licence": "CC0-1.0"}):
        up = c.patch("/collections/allotments_flooded", json=changes, headers=commons.rowan)
        assert up.status_code == 403, up.text
        assert up.json()["code"] == "licence-forbids"
    data = (real_data / ALLOTMENTS).read_bytes()
    for form in ({"visibility": "public"}, {"licence": "CC0-1.0"}):
        put = c.put(
            "/collections/allotments_flooded",
            files={"file": ("again.geojson", data, "application/geo+json")},
            data=form,
            headers=commons.rowan,
        )
        assert put.status_code == 403, put.text
        assert put.json()["code"] == "licence-forbids"
    store = open_store(commons.settings)
    try:
        entry = store.get("allotments_flooded")
    finally:
        store.close()
    assert entry.visibility == "private" and entry.licence == f"{left} AND {right}"
    assert entry.version == 1
    # sharing it within the group is not publishing
    ok = c.patch(
        "/collections/allotments_flooded", json={"visibility": "group"}, headers=commons.rowan
    )
    assert ok.status_code == 200, ok.text


def test_saving_needs_a_writer_who_may_add_to_the_group(commons: Commons) -> None:
    before = commons.layer_ids()
    assert save(commons, {}).status_code == 401
    assert save(commons, commons.olive).status_code == 403  # a read-only token
    outsider = save(commons, commons.sam)  # cannot even see allotments
    assert outsider.status_code == 404
    commons.licence("allotments", "OGL-UK-3.0")
    other = save(commons, commons.rowan, group="another-group")
    assert other.status_code == 403 and "another-group" in other.json()["description"]
    assert commons.layer_ids() == before


def test_the_analysis_routes_declare_one_rule(commons: Commons) -> None:
    from landexplorer.api.deps import rule_of
    from tests.access.test_matrix import path_of, routes_of

    app = commons.client.app
    rules = {
        path_of(route): rule_of(route)
        for route, _ in routes_of(app)
        if path_of(route).startswith("/analysis/")
    }
    assert rules == {
        "/analysis/compare": "anyone",
        "/analysis/overlay": "anyone",
        "/analysis/report": "anyone",
        "/analysis/zonal": "anyone",
        "/analysis/save": "signed-in-writer",
    }
    doc = commons.client.get("/openapi.json").json()
    answers = doc["paths"]["/analysis/save"]["post"]["responses"]
    assert {"201", "401", "403", "409"} <= answers.keys()

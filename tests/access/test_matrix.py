"""The permission matrix, generated from the application's own route table, on both stores.

1. Every route declares an access rule (``landexplorer.api.deps.rule_of``): a new route
   without one fails here, named in the message.
2. Every route whose rule is an action on the path's layer (``layer:view``, ``download``,
   ``change``, ``manage``), for every actor (anonymous, a share-link holder, a signed-in
   outsider, someone a steward granted layers to, a viewer, a contributor, the owner, the
   owner's read-only token, a steward signed in with the page's session cookie, an admin)
   and every layer visibility (private, group, link, public with and without a licence),
   vector and raster: the status is what ``landexplorer.access.policy.decide`` says (a
   layer the caller may not see is 404; a change is 401 signed out, 403 seen but not
   allowed), a refused request changes nothing stored, and a conditional request gets a
   304 only from someone who may see the layer. Tiles are asked for once the tile cache
   holds them, so the fast cached-tile path answers them.
3. The routes that list or combine layers (``/collections``, the web page's search and
   ``/config.json``, ``/jobs``, analysis) only ever show what the caller may see.

The layers are the Trafford allotments (35 features) and the Trafford OS Terrain 50 grid
from the real data bundle, loaded once per visibility; one app per store.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest

from landexplorer.access.model import ANONYMOUS, Actor
from landexplorer.access.policy import decide
from landexplorer.access.secrets import csrf_for
from landexplorer.api import create_app
from landexplorer.api.deps import rule_of
from landexplorer.api.tilefast import CachedTiles
from landexplorer.catalog import LayerEntry, open_store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests.access.test_clients import fresh_settings, open_access
from tests.conftest import STORE_BACKENDS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ALLOTMENTS = "allotments/trafford_allotments.geojson"
DEM = "dem_os_terrain50/trafford_os_terrain50_dtm_50m_bng.tif"
GROUP = "orchard-club"
OTHER_GROUP = "canal-friends"
TILE = (12, 2021, 1326)  # over Trafford: allotments and the terrain grid both touch it
PLACE = {"lon": "-2.33", "lat": "53.42"}  # inside the terrain grid

#: visibility name in the matrix -> (visibility, licence)
VISIBILITIES = {
    "private": ("private", "OGL-UK-3.0"),
    "group": ("group", "OGL-UK-3.0"),
    "link": ("link", "OGL-UK-3.0"),
    "public": ("public", "OGL-UK-3.0"),
    "public_unlicensed": ("public", ""),
}
#: who sees a layer of each visibility (written by hand: the policy must agree)
SEES = {"private": {"steward", "owner", "owner read token", "admin"}}
SEES["group"] = SEES["private"] | {"granted", "viewer", "contributor"}
SEES["link"] = SEES["group"] | {"link holder"}
SEES["public"] = SEES["link"] | {"anonymous", "outsider"}
SEES["public_unlicensed"] = SEES["group"]  # public needs a licence: until then, group

#: Routes that are not the application's own (FastAPI's OpenAPI document, which names no
#: layer) and the rule they stand for.
NOT_API_ROUTES = {"/openapi.json": "anyone"}
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_REFUSALS = {401: "not-signed-in", 403: "forbidden", 404: "not-found"}


def routes_of(app: Any) -> list[tuple[Any, Any]]:
    """(route, original route) for every route of ``app``, included routers flattened
    (FastAPI >= 0.130 keeps them lazily; older versions list them in ``app.routes``)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    found = flatten(app.routes) if flatten is not None else app.routes
    return [(route, getattr(route, "original_route", route)) for route in found]


def path_of(route: Any) -> str:
    return str(getattr(route, "path_format", None) or getattr(route, "path", ""))


# ---------------------------------------------------------------- 1. every route has a rule
def test_every_route_declares_an_access_rule(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"))
    missing, unknown = [], []
    for route, original in routes_of(app):
        path = path_of(route)
        if isinstance(original, fastapi.routing.APIRoute):
            if rule_of(route) is None:
                missing.append(f"{'/'.join(sorted(route.methods))} {path} ({original.name})")
        elif path not in NOT_API_ROUTES:
            unknown.append(f"{path} ({type(original).__name__})")
    assert not missing, (
        "these routes declare no access rule: depend on one of the rule dependencies of "
        "landexplorer/api/deps.py (Anyone, SignedIn, SignedInWriter, AdminOnly, Collection, "
        "VectorCollection, DownloadCollection, ChangeCollection, ManageCollection):\n  "
        + "\n  ".join(missing)
    )
    assert not unknown, "routes outside FastAPI's own that no rule covers:\n  " + "\n  ".join(
        unknown
    )


# ---------------------------------------------------------------- the world of the matrix
@dataclass
class Caller:
    """One actor of the matrix: how it asks (headers, a share link) and who it is."""

    name: str
    actor: Actor
    headers: dict[str, str] = field(default_factory=dict)
    link_of: dict[str, str] = field(default_factory=dict)  # layer -> its share link

    def params(self, layer: str) -> dict[str, str]:
        return {"link": self.link_of[layer]} if layer in self.link_of else {}


@dataclass
class World:
    client: TestClient
    settings: Settings
    callers: dict[str, Caller]
    layers: dict[str, str]  # layer id -> visibility name in the matrix
    links: dict[str, str]  # layer id -> a live share link of it

    @property
    def store(self) -> Any:
        return self.client.app.state.store  # type: ignore[attr-defined]

    @property
    def access(self) -> Any:
        return self.client.app.state.access  # type: ignore[attr-defined]

    def entry(self, layer: str) -> LayerEntry:
        entry: LayerEntry = self.store.get(layer)
        return entry


def _layer_id(kind: str, visibility: str) -> str:
    return f"{kind}_{visibility}"


def build_world(settings: Settings, real_data: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The layers (owned by ``ora``, group ``orchard-club``) and the people."""
    store = open_store(settings)
    layers: dict[str, str] = {}
    try:
        for name, (visibility, licence) in VISIBILITIES.items():
            for kind, source in (("plots", ALLOTMENTS), ("terrain", DEM)):
                layer_id = _layer_id(kind, name)
                options = IngestOptions(
                    id=layer_id, licence=licence or None, attribution="Trafford Council / OS",
                    owner="ora", group=GROUP, visibility=visibility if licence else "group",
                )  # fmt: skip
                ingest(store, [real_data / source], options)
                if not licence:  # public before it had a licence (uploads refuse that now)
                    store.update_metadata(layer_id, visibility="public")
                layers[layer_id] = name
    finally:
        store.close()
    secrets: dict[str, Any] = {}
    with open_access(settings) as access:
        access.add_group(GROUP, "Orchard club")
        access.add_group(OTHER_GROUP, "Canal friends")
        for user, admin in (
            ("otto", False), ("gus", False), ("vic", False), ("cora", False), ("ora", False),
            ("stew", False), ("ada", True),
        ):  # fmt: skip
            access.add_user(user, admin=admin)
        access.set_member(OTHER_GROUP, "otto", "steward")  # a steward, but of another group
        access.set_member(GROUP, "vic", "viewer")
        access.set_member(GROUP, "cora", "contributor")
        access.set_member(GROUP, "ora", "contributor")
        access.set_member(GROUP, "stew", "steward")
        for layer_id in layers:
            access.grant(layer_id, "gus", "stew")  # grants count for group and link layers only
        secrets["links"] = {layer_id: access.create_link(layer_id, "ora")[0] for layer_id in layers}
        secrets["tokens"] = {
            "outsider": access.create_token("otto", "tests", "write", 7)[0],
            "granted": access.create_token("gus", "tests", "write", 7)[0],
            "viewer": access.create_token("vic", "tests", "write", 7)[0],
            "contributor": access.create_token("cora", "tests", "write", 7)[0],
            "owner": access.create_token("ora", "tests", "write", 7)[0],
            "owner read token": access.create_token("ora", "QGIS", "read", 7)[0],
            "admin": access.create_token("ada", "tests", "write", 7)[0],
        }
        secrets["session"] = access.create_session("stew")
    return layers, secrets


def make_callers(access: Any, secrets: dict[str, Any]) -> dict[str, Caller]:
    links: dict[str, str] = secrets["links"]
    callers = {
        "anonymous": Caller("anonymous", ANONYMOUS),
        # anonymous, holding the share link of whichever layer it asks for
        "link holder": Caller(
            "link holder",
            ANONYMOUS.with_links(frozenset(access.link_layers(list(links.values())))),
            link_of=links,
        ),
    }
    for name, token in secrets["tokens"].items():
        actor = access.actor_for_secret(token, "token")
        assert actor is not None, name
        callers[name] = Caller(name, actor, {"Authorization": f"Bearer {token}"})
    session = secrets["session"]
    steward = access.actor_for_secret(session, "session")
    assert steward is not None
    callers["steward"] = Caller(
        "steward", steward, {"Cookie": f"lx_session={session}", "X-CSRF-Token": csrf_for(session)}
    )
    return callers


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, real_data: Path
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"matrix-{request.param}")
    settings = fresh_settings(request.param, tmp, real_data, request)
    layers, secrets = build_world(settings, real_data)
    # the web page's layer styles name every layer, whoever may see it
    manifest = tmp / "manifest.json"
    styles = {layer_id: {"color": "#336633"} for layer_id in layers}
    manifest.write_text(json.dumps({"map": {"styles": styles, "visible": sorted(layers)}}))
    settings = settings.model_copy(update={"demo_manifest": manifest})
    with TestClient(create_app(settings)) as client:
        access = client.app.state.access  # type: ignore[attr-defined]
        callers = make_callers(access, secrets)
        # the hand-written table and the policy agree before anything is asked over HTTP
        for layer_id, name in layers.items():
            entry = client.app.state.store.get(layer_id)  # type: ignore[attr-defined]
            seen = {c.name for c in callers.values() if decide(c.actor, "view", entry).allowed}
            assert seen == SEES[name], (layer_id, seen ^ SEES[name])
        yield World(client, settings, callers, layers, secrets["links"])


# ---------------------------------------------------------------- 2. the layer routes
def fill(path: str, layer_id: str, entry: LayerEntry, fid: int) -> str:
    z, x, y = TILE
    values = {
        "collectionId": layer_id,
        "featureId": str(fid),
        "z": str(z),
        "x": str(x),
        "y": str(y),
        "fmt": "png" if entry.data_type == "raster" else "mvt",
    }
    # any other path parameter (a link or request id of a newer route): a made-up one
    return re.sub(r"{(\w+)(?::\w+)?}", lambda m: values.get(m.group(1), "nothing"), path)


def expected(caller: Caller, method: str, rule: str, entry: LayerEntry) -> int | None:
    """None when the caller may do this, else the refusal's status: what ``WriteGuard``
    answers before the body is read (a write signed out: 401; with a read-only token: 403),
    then what ``deps.allowed`` maps the policy's answer to."""
    actor = caller.actor
    if method in _WRITES:
        if not actor.signed_in:
            return 401
        if not actor.may_write:
            return 403
    action = rule.removeprefix("layer:")
    if action != "view" and not decide(actor, "view", entry).allowed:
        return 404
    if decide(actor, action, entry).allowed:
        return None
    if action == "view":
        return 404
    return 401 if not actor.signed_in else 403


def snapshot(world: World) -> Any:
    """Everything a request could change: the catalogue's entries and every access table
    (a token's last-used time aside, which is bookkeeping, not a change)."""
    entries = sorted(json.dumps(e.to_dict(), sort_keys=True, default=str)
                     for e in world.store.list_layers())  # fmt: skip
    dump = world.access.dump()
    dump.pop("access_secrets")
    return entries, dump


def _body(method: str, path: str) -> dict[str, Any] | None:
    if method not in _WRITES or method == "DELETE":
        return None
    if method == "PATCH" and path == "/collections/{collectionId}":
        return {"kind": "not-a-kind"}  # past the rule, refused as bad input: nothing changes
    return {}


def _layer_routes(app: Any) -> list[tuple[str, str, str]]:
    out = []
    for route, _ in routes_of(app):
        rule = rule_of(route)
        if rule and rule.startswith("layer:"):
            for method in sorted(route.methods or ()):
                out.append((method, path_of(route), rule))
    return out


def _is_rule_refusal(response: Any, layer_id: str) -> bool:
    """Is this answer one of the rule's refusals (not the route's own answer)?"""
    if response.status_code not in _REFUSALS:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    if response.status_code == 404:
        return bool(body.get("description") == f"There is no collection called '{layer_id}'.")
    return bool(body.get("code") in ("not-signed-in", "forbidden"))


def _applies(world: World, method: str, path: str, layer_id: str) -> bool:
    """Does this route apply to this kind of layer? Asked as the admin (who sees every
    layer): a vector-only route answers a raster layer 404 and the other way round."""
    if method in _WRITES:
        return True
    entry = world.entry(layer_id)
    url = fill(path, layer_id, entry, 1)
    admin = world.callers["admin"]
    r = world.client.request(method, url, params=_query(path), headers=admin.headers)
    return r.status_code != 404


def _query(path: str) -> dict[str, str]:
    if path.endswith("/changes/live"):
        return {"timeout": "0"}  # the live feed ends at once (after its first event)
    return dict(PLACE) if path.endswith("/value") else {}


def test_every_layer_route_answers_as_the_policy_says(world: World) -> None:
    client = world.client
    routes = _layer_routes(client.app)
    paths = {p for _, p, _ in routes}
    for must in (
        "/collections/{collectionId}", "/collections/{collectionId}/items",
        "/collections/{collectionId}/items/{featureId}", "/collections/{collectionId}/queryables",
        "/collections/{collectionId}/schema", "/collections/{collectionId}/export",
        "/collections/{collectionId}/value", "/collections/{collectionId}/tiles",
        "/collections/{collectionId}/tiles/WebMercatorQuad",
        "/collections/{collectionId}/tiles/WebMercatorQuad/{z}/{x}/{y}",
        "/collections/{collectionId}/tiles/WebMercatorQuad/tilejson.json",
        "/tiles/{collectionId}/{z}/{x}/{y}.{fmt}", "/tiles/{collectionId}/tilejson.json",
    ):  # fmt: skip
        assert must in paths, f"{must} has no layer rule"
    fid = client.get("/collections/plots_public/items?limit=1").json()["features"][0]["id"]
    reads = [r for r in routes if r[0] not in _WRITES]
    writes = [r for r in routes if r[0] in _WRITES]
    applies = {
        (m, p, layer_id): _applies(world, m, p, layer_id)
        for m, p, _ in reads
        for layer_id in world.layers
    }  # also draws every tile once, as the admin: from here on the tile cache holds them
    for method, path, _ in reads:
        assert any(applies[(method, path, lid)] for lid in world.layers), (
            f"{method} {path} answered the admin 404 for every layer"
        )
    problems: list[str] = []
    for layer_id, vis in world.layers.items():
        for caller in world.callers.values():
            # refused requests first, with the stored state compared around them
            before = snapshot(world)
            for method, path, rule in reads + writes:
                entry = world.entry(layer_id)
                if method not in _WRITES and not applies[(method, path, layer_id)]:
                    continue
                want = expected(caller, method, rule, entry)
                if want is None:
                    continue
                url = fill(path, layer_id, entry, fid)
                r = client.request(
                    method, url, params={**_query(path), **caller.params(layer_id)},
                    headers=caller.headers, json=_body(method, path),
                )  # fmt: skip
                if r.status_code != want or (
                    method != "HEAD" and r.json().get("code") != _REFUSALS[want]
                ):
                    problems.append(
                        f"{caller.name} {method} {url} ({vis}): {r.status_code} {r.text[:120]}, "
                        f"the policy says {want}"
                    )
                elif want == 404 and method != "HEAD":
                    text = r.json()["description"]
                    if text != f"There is no collection called '{layer_id}'.":
                        problems.append(f"{caller.name} {method} {url}: 404 says {text!r}")
            if snapshot(world) != before:
                problems.append(
                    f"refused requests of {caller.name} on {layer_id} changed the store"
                )
            # then what the caller may do
            for method, path, rule in reads + writes:
                entry = world.entry(layer_id)
                if method not in _WRITES and not applies[(method, path, layer_id)]:
                    continue
                if expected(caller, method, rule, entry) is not None or method == "DELETE":
                    continue  # a delete the caller may make is tried in tests/api/test_uploads
                url = fill(path, layer_id, entry, fid)
                r = client.request(
                    method, url, params={**_query(path), **caller.params(layer_id)},
                    headers=caller.headers, json=_body(method, path),
                )  # fmt: skip
                if method in _WRITES:
                    if _is_rule_refusal(r, layer_id):
                        problems.append(
                            f"{caller.name} {method} {url} ({vis}) was refused: {r.text[:160]}"
                        )
                elif r.status_code not in (200, 204):
                    problems.append(
                        f"{caller.name} {method} {url} ({vis}): {r.status_code} {r.text[:160]}, "
                        "the policy says yes"
                    )
                elif not entry.is_public:  # kept by nobody but the asker
                    control = r.headers.get("cache-control", "")
                    if not control.startswith("private"):
                        problems.append(f"{method} {url} ({vis}) is Cache-Control: {control!r}")
    assert not problems, f"{len(problems)} answers differ from the policy:\n  " + "\n  ".join(
        problems[:60]
    )


def test_routes_of_other_rules_tell_a_private_layer_from_none(world: World) -> None:
    """A route on ``/collections/{id}/...`` whose rule is not an action on the layer (an
    access request: anyone signed in) answers a caller who may not see a private layer
    exactly as for a layer that does not exist, and changes nothing."""
    client, private = world.client, world.entry("plots_private")
    routes = [
        (method, path_of(route))
        for route, _ in routes_of(client.app)
        if "{collectionId}" in path_of(route) and not (rule_of(route) or "").startswith("layer:")
        for method in sorted(route.methods or ())
    ]
    problems = []
    for caller in (world.callers["anonymous"], world.callers["outsider"]):
        before = snapshot(world)
        for method, path in routes:
            answers = []
            for layer_id in ("plots_private", "nothing_here"):
                r = client.request(
                    method, fill(path, layer_id, private, 1), headers=caller.headers,
                    json=_body(method, path),
                )  # fmt: skip
                answers.append((r.status_code, r.text.replace(layer_id, "LAYER")))
            if answers[0] != answers[1]:
                problems.append(f"{caller.name} {method} {path}: {answers[0]} vs {answers[1]}")
        if snapshot(world) != before:
            problems.append(f"{caller.name}'s requests for a private layer changed the store")
    assert not problems, "a private layer is told from none:\n  " + "\n  ".join(problems)


def test_conditional_requests_get_304_only_from_those_who_may_see(world: World) -> None:
    """An ETag someone saw earlier never turns into a 304 (the layer is there, unchanged)
    for a caller who may not see the layer; a tile's or page's 304 of a layer that is not
    public is private."""
    client, admin = world.client, world.callers["admin"]
    z, x, y = TILE
    problems = []
    for layer_id, vis in world.layers.items():
        entry = world.entry(layer_id)
        ext = "png" if entry.data_type == "raster" else "mvt"
        urls = [
            (f"/tiles/{layer_id}/{z}/{x}/{y}.{ext}", {"v": str(entry.version)}),
            (f"/collections/{layer_id}/tiles/WebMercatorQuad/{z}/{x}/{y}", {}),
        ]
        if entry.data_type == "vector":
            urls += [(f"/collections/{layer_id}/items", {"limit": "5"}),
                     (f"/collections/{layer_id}/items/1", {})]  # fmt: skip
        for url, query in urls:
            for caller in world.callers.values():
                params = {**query, **caller.params(layer_id)}  # the same address as the admin's
                first = client.get(url, params=params, headers=admin.headers)
                assert first.status_code in (200, 204), (url, first.text)
                headers = {**caller.headers, "If-None-Match": first.headers["etag"]}
                r = client.get(url, params=params, headers=headers)
                want = 304 if caller.name in SEES[vis] else 404
                if r.status_code != want:
                    problems.append(f"{caller.name} {url} ({vis}): {r.status_code}, wanted {want}")
                elif want == 304 and not entry.is_public:
                    control = r.headers.get("cache-control", "")
                    if not control.startswith("private"):
                        problems.append(f"304 of {url} ({vis}) is Cache-Control: {control}")
    assert not problems, "\n  ".join(problems)


def test_cached_tiles_ask_the_policy_before_the_cache(world: World) -> None:
    """The fast cached-tile path (``CachedTiles``, inside ``Identify``) answers a cached
    tile of a layer that is not public to those who may see it, as private, and leaves
    everyone else to the router's 404; the public fast path is unchanged."""
    client, app = world.client, world.client.app
    z, x, y = TILE
    # where they stand: public tiles in front of everything, the rest inside Identify
    order = [(m.cls.__name__, m.kwargs.get("public_only", False)) for m in app.user_middleware]
    assert order.index(("CachedTiles", True)) == 0, order
    assert order.index(("Identify", False)) < order.index(("CachedTiles", False)), order
    fast = CachedTiles(app)  # type: ignore[arg-type]
    front = CachedTiles(app, public_only=True)  # type: ignore[arg-type]

    def scope_of(path: str, caller: Caller, query: str = "") -> dict[str, Any]:
        return {
            "type": "http", "method": "GET", "path": path, "app": app, "headers": [],
            "query_string": query.encode(), "state": {"actor": caller.actor},
        }  # fmt: skip

    for layer_id, vis in world.layers.items():
        entry = world.entry(layer_id)
        ext = "png" if entry.data_type == "raster" else "mvt"
        path = f"/tiles/{layer_id}/{z}/{x}/{y}.{ext}"
        drawn = client.get(path, headers=world.callers["admin"].headers)
        assert drawn.status_code in (200, 204)
        ahead = front._cached(scope_of(path, world.callers["anonymous"], f"v={entry.version}"))
        assert (ahead is not None) == entry.is_public, f"{layer_id} in front of Identify"
        for caller in world.callers.values():
            query = f"v={entry.version}" + (
                f"&link={caller.link_of[layer_id]}" if layer_id in caller.link_of else ""
            )
            answer = fast._cached(scope_of(path, caller, query))
            if caller.name not in SEES[vis]:
                assert answer is None, f"the fast path gave {caller.name} a tile of {layer_id}"
                continue
            assert answer is not None, f"{caller.name} missed the fast path on {layer_id}"
            status, headers, body = answer
            assert status == drawn.status_code and body == drawn.content
            control = dict(headers)[b"cache-control"].decode()
            assert control == drawn.headers["cache-control"], (layer_id, control)
            assert control.startswith("public" if entry.is_public else "private")


# ---------------------------------------------------------------- exports are audited
def test_exports_are_downloads_and_those_of_layers_not_public_are_audited(world: World) -> None:
    client = world.client
    for layer_id, vis in world.layers.items():
        entry = world.entry(layer_id)
        if entry.data_type != "vector":
            continue
        for caller in world.callers.values():
            if caller.name not in SEES[vis]:
                continue
            before = world.access.read_audit(limit=1)
            r = client.get(
                f"/collections/{layer_id}/export", params={"f": "csv", **caller.params(layer_id)},
                headers=caller.headers,
            )  # fmt: skip
            assert r.status_code == 200, r.text
            after = world.access.read_audit(limit=5)
            new = [e for e in after if not before or e.id > before[0].id]
            if entry.is_public:
                assert new == [], f"a public export was audited: {new}"
                continue
            assert len(new) == 1, (caller.name, layer_id, new)
            event = new[0]
            assert event.action == "download"
            assert event.layer == layer_id and event.version == entry.version
            assert event.actor == caller.actor.label()
            assert event.detail["format"] == "csv"
            assert event.at[:4] == time.strftime("%Y", time.gmtime())


# ---------------------------------------------------------------- 3. lists and combinations
def _seen_by(world: World, caller: Caller) -> set[str]:
    return {lid for lid, vis in world.layers.items() if caller.name in SEES[vis]}


def test_the_collection_list_shows_only_what_the_caller_may_see(world: World) -> None:
    for caller in world.callers.values():
        params = {"link": world.links["plots_link"]} if caller.link_of else {}
        r = world.client.get("/collections", params=params, headers=caller.headers)
        assert r.status_code == 200
        shown = {c["id"] for c in r.json()["collections"]} & set(world.layers)
        want = _seen_by(world, caller)
        if caller.link_of:  # one link given: that layer and the public ones
            want = {lid for lid in want if world.layers[lid] == "public"} | {"plots_link"}
        assert shown == want, (caller.name, shown ^ want)
        if any(world.layers[lid] != "public" for lid in want):  # a list for this caller only
            assert r.headers["cache-control"].startswith("private"), caller.name


def test_search_shows_only_what_the_caller_may_see(world: World) -> None:
    """The web page's search box asks each layer's queryables, then its items with a CQL2
    ``LIKE`` filter (landexplorer/web/static/js/find.js)."""
    for caller in world.callers.values():
        for layer_id, vis in world.layers.items():
            if not layer_id.startswith("plots_"):
                continue
            params = {"filter-lang": "cql2-text", "filter": "name LIKE '%a%'", "limit": "5"}
            params.update(caller.params(layer_id))
            for url in (f"/collections/{layer_id}/queryables", f"/collections/{layer_id}/items"):
                r = world.client.get(url, params=params, headers=caller.headers)
                want = 200 if caller.name in SEES[vis] else 404
                assert r.status_code == want, (caller.name, url, r.status_code, r.text[:200])


def test_the_web_page_config_names_no_layer_the_caller_may_not_see(world: World) -> None:
    for caller in world.callers.values():
        seen = _seen_by(world, caller)
        params = {"link": world.links["plots_link"]} if caller.link_of else {}
        if caller.link_of:  # one link given: that layer and the public ones
            seen = {lid for lid in seen if world.layers[lid] == "public"} | {"plots_link"}
        r = world.client.get("/config.json", params=params, headers=caller.headers)
        assert r.status_code == 200
        unseen = set(world.layers) - seen
        named = [lid for lid in unseen if lid in r.text]
        assert not named, f"/config.json names {sorted(named)} to {caller.name}"
        body = r.json()
        assert set(body["styles"]) == seen
        assert set(body["defaultLayers"]) == seen
        if unseen and caller.actor.signed_in:
            assert r.headers["cache-control"].startswith("private")


def test_the_pages_open_to_anyone_name_no_layer(world: World) -> None:
    """The landing page, conformance, the OpenAPI document and the API page are the same
    for everybody and name no layer of the catalogue."""
    for url in ("/", "/conformance", "/openapi.json", "/docs", "/?f=html"):
        r = world.client.get(url)
        assert r.status_code == 200, url
        named = sorted(lid for lid in world.layers if lid in r.text)
        assert not named, f"{url} names {named}"


def test_jobs_are_their_uploaders_and_the_admins(world: World, real_data: Path) -> None:
    client, cora = world.client, world.callers["contributor"]
    src = real_data / ALLOTMENTS
    with open(src, "rb") as fh:
        r = client.post(
            "/collections", files={"file": (src.name, fh)},
            data={"id": "cora_upload", "group": GROUP}, headers=cora.headers,
        )  # fmt: skip
    assert r.status_code == 202, r.text
    location = r.headers["location"].split("://", 1)[-1].split("/", 1)[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/{location}", headers=cora.headers).json()
        if job["status"] in ("successful", "failed"):
            break
        time.sleep(0.1)
    assert job["status"] == "successful", job
    try:
        for caller in world.callers.values():
            r = client.get(
                f"/{location}", params=caller.params("plots_link"), headers=caller.headers
            )
            if caller.name in ("contributor", "admin"):
                assert r.status_code == 200 and r.json()["layers"] == ["cora_upload"]
            elif not caller.actor.signed_in:
                assert r.status_code == 401, (caller.name, r.text)
            else:
                assert r.status_code == 404, (caller.name, r.text)
                assert "cora_upload" not in r.text
    finally:
        client.delete("/collections/cora_upload", headers=world.callers["admin"].headers)


def _area() -> dict[str, Any]:
    ring = [[-2.40, 53.38], [-2.25, 53.38], [-2.25, 53.48], [-2.40, 53.48], [-2.40, 53.38]]
    return {"type": "Polygon", "coordinates": [ring]}


def test_analysis_uses_only_layers_the_caller_may_see(world: World) -> None:
    """compare, zonal and report: a layer the caller may not see is 'no collection called
    ...' (404), as if it did not exist; a report over every layer never counts one."""
    client = world.client
    problems = []
    tried: set[str] = set()  # what may be done is tried once per layer (it is slow work)
    for caller in world.callers.values():
        seen = _seen_by(world, caller)
        for layer_id, vis in world.layers.items():
            if layer_id in seen and layer_id in tried:
                continue
            tried |= {layer_id} & seen
            params = caller.params(layer_id)
            if layer_id.startswith("plots_"):
                asks = [
                    ("/analysis/compare", {"left": layer_id, "right": "plots_public"}),
                    ("/analysis/compare", {"left": "plots_public", "right": layer_id}),
                    ("/analysis/report", {"area": _area(), "layers": [layer_id]}),
                    ("/analysis/zonal", {"layer": layer_id, "raster": "terrain_public"}),
                ]
            else:
                asks = [("/analysis/zonal", {"layer": "plots_public", "raster": layer_id})]
            for url, body in asks:
                r = client.post(url, json=body, params=params, headers=caller.headers)
                if layer_id in seen:
                    if r.status_code != 200:
                        problems.append(
                            f"{caller.name} {url} {body}: {r.status_code} {r.text[:120]}"
                        )
                elif r.status_code != 404 or (
                    r.json().get("description") != f"There is no collection called '{layer_id}'."
                ):
                    problems.append(
                        f"{caller.name} {url} with {layer_id} ({vis}), which it may not see: "
                        f"{r.status_code} {r.text[:120]}"
                    )
        # a report over every layer names and counts only the layers the caller may see
        r = client.post("/analysis/report", json={"area": _area()}, headers=caller.headers)
        assert r.status_code == 200, r.text
        unseen = [lid for lid in set(world.layers) - seen if lid in r.text]
        if unseen:
            problems.append(f"a report for {caller.name} names {sorted(unseen)}")
    assert not problems, "analysis shows layers the caller may not see:\n  " + "\n  ".join(
        problems[:40]
    )

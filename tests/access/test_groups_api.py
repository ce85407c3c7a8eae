"""The groups and sharing API on both stores: /groups and their members, /me/layers, who
can see a layer, share links, grants, access requests and /audit. Each route is tried by
the people it is for and by those it refuses (in words, changing nothing), and each
change is looked for in the audit log."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from landexplorer.access.store import AccessStore
from landexplorer.api import create_app
from landexplorer.api.deps import rule_of
from landexplorer.settings import Settings
from tests.access.test_clients import GROUP, build_catalogue, open_access
from tests.people import bearer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PASSWORD = "apple blossom in may"
PEOPLE = {  # name -> role in orchard-club ("" for none)
    "rowan": "steward",  # owns allotments (a group layer of orchard-club)
    "olive": "viewer",
    "pip": "contributor",
    "sam": "",
    "tam": "",
}


@dataclass
class World:
    client: TestClient
    tokens: dict[str, str]  # write tokens; "ada" is a site admin, "olive-read" read-only

    def as_(self, who: str) -> dict[str, str]:
        return bearer(self.tokens[who]) if who else {}

    def get(self, path: str, who: str = "", **kw: Any) -> Any:
        return self.client.get(path, headers=self.as_(who), **kw)

    def send(self, method: str, path: str, who: str = "", body: Any = None) -> Any:
        return self.client.request(method, path, headers=self.as_(who), json=body)

    @property
    def access(self) -> AccessStore:
        access: AccessStore = self.client.app.state.access  # type: ignore[attr-defined]
        return access

    def events(self, action: str) -> list[dict[str, Any]]:
        return [e.public() for e in self.access.read_audit(limit=500) if e.action == action]


@pytest.fixture
def world(store_backend: str, settings: Settings, real_data: Path) -> Iterator[World]:
    build_catalogue(settings, real_data)
    tokens: dict[str, str] = {}
    with open_access(settings) as access:
        access.add_group(GROUP, "Orchard club")
        access.add_user("ada", admin=True)
        for name, role in PEOPLE.items():
            access.add_user(name, password=PASSWORD if name == "olive" else None)
            if role:
                access.set_member(GROUP, name, role)
        for name in ("ada", *PEOPLE):
            tokens[name] = access.create_token(name, "tests", "write", 7)[0]
        tokens["olive-read"] = access.create_token("olive", "read", "read", 7)[0]
        tokens["rowan-read"] = access.create_token("rowan", "read", "read", 7)[0]
    with TestClient(create_app(settings)) as client:
        yield World(client, tokens)


def refused(r: Any, status: int, words: str = "") -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "description"}
    assert words in body["description"]


# ---------------------------------------------------------------- groups and members
def test_groups_are_listed_for_their_members_and_all_for_admins(world: World) -> None:
    refused(world.get("/groups"), 401, "needs signing in")
    mine = world.get("/groups", "olive").json()["groups"]
    assert [(g["name"], g["title"], g["role"]) for g in mine] == [(GROUP, "Orchard club", "viewer")]
    assert world.get("/groups", "sam").json() == {"groups": []}
    made = world.send("POST", "/groups", "ada", {"name": "canal-friends", "title": "Canal"})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "canal-friends"
    every = [g["name"] for g in world.get("/groups", "ada").json()["groups"]]
    assert every == ["canal-friends", GROUP]
    assert [g["name"] for g in world.get("/groups", "olive").json()["groups"]] == [GROUP]
    (event,) = world.events("group added")
    assert event["actor"] == "ada" and event["detail"]["group"] == "canal-friends"


def test_only_admins_make_groups(world: World) -> None:
    refused(world.send("POST", "/groups", "rowan", {"name": "mine"}), 403, "admins")
    refused(world.send("POST", "/groups", "ada", {"name": GROUP}), 409, "already a group")
    refused(world.send("POST", "/groups", "ada", {"name": "No Spaces"}), 400, "group name")
    refused(world.send("POST", "/groups", "ada", {"name": "x", "admin": True}), 400)
    assert [g.name for g in world.access.list_groups()] == [GROUP]
    assert world.events("group added") == []


def test_group_page_shows_members_and_requests_to_stewards(world: World) -> None:
    world.send("POST", "/collections/allotments/requests", "sam", {"message": "please"})
    page = world.get(f"/groups/{GROUP}", "rowan")
    assert page.status_code == 200 and page.headers["cache-control"] == "private, no-store"
    doc = page.json()
    assert doc["title"] == "Orchard club" and doc["role"] == "steward" and doc["may_manage"]
    assert {m["user"]: m["role"] for m in doc["members"]} == {n: r for n, r in PEOPLE.items() if r}
    assert [layer["id"] for layer in doc["layers"]] == ["allotments"]
    (asked,) = doc["requests"]
    assert (asked["user"], asked["layer"], asked["message"]) == ("sam", "allotments", "please")
    assert asked["layer_title"]
    viewer = world.get(f"/groups/{GROUP}", "olive").json()
    assert "requests" not in viewer and not viewer["may_manage"]
    assert len(viewer["members"]) == 3
    refused(world.get(f"/groups/{GROUP}", "sam"), 404, "no group called")
    refused(world.get("/groups/nowhere", "ada"), 404, "no group called")
    assert world.get(f"/groups/{GROUP}", "ada").json()["may_manage"] is True


def test_stewards_set_roles_add_and_remove_members(world: World) -> None:
    r = world.send("PUT", f"/groups/{GROUP}/members/olive", "rowan", {"role": "contributor"})
    assert r.status_code == 200, r.text
    assert r.json() == {"group": GROUP, "user": "olive", "role": "contributor", "before": "viewer"}
    assert world.access.roles_of("olive") == {GROUP: "contributor"}
    r = world.send("PUT", f"/groups/{GROUP}/members/sam", "rowan", {"role": "viewer"})
    assert r.status_code == 200 and r.json()["before"] is None
    assert world.get("/collections/allotments", "sam").status_code == 200
    assert world.send("DELETE", f"/groups/{GROUP}/members/sam", "rowan").status_code == 204
    assert world.access.roles_of("sam") == {}
    refused(world.get("/collections/allotments", "sam"), 404)  # felt at once
    set_, removed = world.events("member set"), world.events("member removed")
    assert [(e["actor"], e["detail"]["user"], e["detail"]["role"]) for e in set_] == [
        ("rowan", "sam", "viewer"),
        ("rowan", "olive", "contributor"),
    ]
    assert [(e["detail"]["user"], e["detail"]["group"]) for e in removed] == [("sam", GROUP)]


def test_member_changes_that_are_refused_change_nothing(world: World) -> None:
    before = world.access.get_group(GROUP)
    url = f"/groups/{GROUP}/members"
    refused(world.send("PUT", f"{url}/sam", "", {"role": "viewer"}), 401)
    refused(world.send("PUT", f"{url}/sam", "olive", {"role": "viewer"}), 403, "stewards")
    refused(world.send("PUT", f"{url}/sam", "pip", {"role": "steward"}), 403, "stewards")
    refused(world.send("PUT", f"{url}/sam", "sam", {"role": "steward"}), 404)
    refused(world.send("PUT", f"{url}/sam", "olive-read", {"role": "viewer"}), 403, "read-only")
    refused(world.send("PUT", f"{url}/nobody", "rowan", {"role": "viewer"}), 404, "no account")
    refused(world.send("PUT", f"{url}/sam", "rowan", {"role": "admin"}), 400, "role")
    refused(world.send("DELETE", f"{url}/sam", "rowan"), 404, "not a member")
    refused(world.send("DELETE", f"{url}/olive", "pip"), 403)
    # the last steward cannot step down or leave; an admin may take them out
    refused(world.send("PUT", f"{url}/rowan", "rowan", {"role": "viewer"}), 409, "only steward")
    refused(world.send("DELETE", f"{url}/rowan", "rowan"), 409, "only steward")
    assert world.access.get_group(GROUP) == before
    assert world.events("member set") == world.events("member removed") == []
    # with a second steward, the first may step down
    assert world.send("PUT", f"{url}/pip", "rowan", {"role": "steward"}).status_code == 200
    assert world.send("PUT", f"{url}/rowan", "rowan", {"role": "viewer"}).status_code == 200
    refused(world.send("DELETE", f"{url}/pip", "pip"), 409, "only steward")
    assert world.send("DELETE", f"{url}/pip", "ada").status_code == 204
    assert world.access.members_of(GROUP)[0]["user"] == "olive"


# ---------------------------------------------------------------- my layers, who sees
def test_my_layers_and_who_can_see_one(world: World) -> None:
    mine = world.get("/me/layers", "rowan").json()["layers"]
    assert [layer["id"] for layer in mine] == ["allotments"]
    (allotments,) = mine
    assert allotments["visibility"] == "group" and allotments["group"] == GROUP
    assert allotments["may"] == ["view", "download", "edit", "change", "manage"]
    assert allotments["viewers"] == 4  # rowan (owner), olive and pip (members), ada (admin)
    assert world.get("/me/layers", "olive").json() == {"layers": []}
    assert {layer["id"] for layer in world.get("/me/layers", "ada").json()["layers"]} == {
        "allotments",
        "aqma",
    }
    refused(world.get("/me/layers"), 401)
    doc = world.get("/collections/allotments/access", "rowan").json()
    why = {row["who"]: row["why"] for row in doc["who"]}
    assert why == {
        "ada": "site admin",
        "olive": f"member of group '{GROUP}'",
        "pip": f"member of group '{GROUP}'",
        "rowan": "owner",
    }
    assert doc["group_roles"] == {"contributor": ["pip"], "steward": ["rowan"], "viewer": ["olive"]}
    assert doc["links"] == [] and doc["grants"] == [] and doc["public"] is False
    public = world.get("/collections/aqma/access", "ada").json()
    assert public["who"][0]["who"] == "everyone" and public["public"] is True
    refused(world.get("/collections/allotments/access", "olive"), 403, "not manage who sees")
    refused(world.get("/collections/allotments/access", "sam"), 404, "no collection")
    refused(world.get("/collections/allotments/access"), 404, "no collection")
    refused(world.get("/collections/aqma/access"), 401)


# ---------------------------------------------------------------- share links
def test_a_share_link_made_used_and_revoked(world: World) -> None:
    patched = world.send("PATCH", "/collections/allotments", "rowan", {"visibility": "link"})
    assert patched.status_code == 200, patched.text
    made = world.send("POST", "/collections/allotments/links", "rowan", {})
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    link = made.json()
    query = parse_qs(urlparse(link["url"]).query)
    assert query == {"link": [link["link"]], "layers": ["allotments"]}
    assert link["link"].startswith("lxl_") and "note" not in link
    # sam, not in the group, sees the layer with the link, and only with it
    refused(world.get("/collections/allotments", "sam"), 404)
    assert world.get(f"/collections/allotments?link={link['link']}", "sam").status_code == 200
    assert world.client.get(f"/collections/allotments?link={link['link']}").status_code == 200
    listed = world.get("/collections/allotments/links", "rowan").json()["links"]
    assert [(x["id"], x["created_by"], x["revoked"]) for x in listed] == [
        (link["id"], "rowan", False)
    ]
    assert link["link"] not in repr(listed)
    seen = world.get("/collections/allotments/access", "rowan").json()
    assert seen["live_links"] == 1
    assert {"who": "anyone holding a share link", "why": "1 live link"} in seen["who"]
    (mine,) = world.get("/me/layers", "rowan").json()["layers"]
    assert mine["live_links"] == 1 and mine["visibility"] == "link"
    gone = world.send("DELETE", f"/collections/allotments/links/{link['id']}", "rowan")
    assert gone.status_code == 204
    refused(world.client.get(f"/collections/allotments?link={link['link']}"), 404)
    refused(world.send("DELETE", f"/collections/allotments/links/{link['id']}", "rowan"), 404)
    assert [e["detail"]["link"] for e in world.events("link made")] == [link["id"]]
    assert [e["actor"] for e in world.events("link revoked")] == ["rowan"]
    assert link["link"] not in repr(world.access.read_audit(limit=500))


def test_share_links_that_are_refused_change_nothing(world: World) -> None:
    refused(world.send("POST", "/collections/allotments/links", "olive", {}), 403)
    refused(world.send("POST", "/collections/allotments/links", "sam", {}), 404)
    refused(world.send("POST", "/collections/allotments/links", "rowan-read", {}), 403, "read-only")
    refused(world.send("POST", "/collections/allotments/links", "", {}), 401)
    refused(world.send("POST", "/collections/nowhere/links", "ada", {}), 404)
    refused(world.send("POST", "/collections/allotments/links", "rowan", {"days": 3}), 400)
    refused(world.send("DELETE", "/collections/allotments/links/abc", "rowan"), 404)
    assert world.access.list_links("allotments") == []
    assert world.events("link made") == []
    # a group layer's link is made, with a note: it works once the layer is "link"
    note = world.send("POST", "/collections/allotments/links", "rowan", {}).json()["note"]
    assert "only while its visibility is 'link'" in note


def test_a_cookie_write_needs_the_pages_security_check(world: World) -> None:
    signed_in = world.client.post("/auth/login", json={"name": "olive", "password": PASSWORD})
    csrf = signed_in.json()["csrf"]
    url = f"/groups/{GROUP}/members/olive"
    refused(world.client.put(url, json={"role": "steward"}), 403, "security check")
    with_check = world.client.put(url, json={"role": "steward"}, headers={"X-CSRF-Token": csrf})
    refused(with_check, 403, "stewards")  # the check passes; a viewer still may not
    assert world.access.roles_of("olive") == {GROUP: "viewer"}


# ---------------------------------------------------------------- requests and grants
def test_asking_for_a_group_layer_granted(world: World) -> None:
    asked = world.send("POST", "/collections/allotments/requests", "sam", {"message": "hi"})
    assert asked.status_code == 201, asked.text
    request = asked.json()
    assert (request["status"], request["user"], request["layer"]) == (
        "pending",
        "sam",
        "allotments",
    )
    again = world.send("POST", "/collections/allotments/requests", "sam", {})
    assert again.status_code == 200 and again.json()["id"] == request["id"]
    waiting = world.get("/requests", "rowan").json()
    assert [r["id"] for r in waiting["requests"]] == [request["id"]]
    assert world.get("/requests", "sam").json() == {
        "requests": [],
        "mine": [request],
    }
    assert world.get("/requests", "olive").json() == {"requests": [], "mine": []}
    refused(world.send("POST", f"/requests/{request['id']}/grant", "olive", {}), 403)
    refused(world.send("POST", f"/requests/{request['id']}/grant", "tam", {}), 404)
    refused(world.send("POST", f"/requests/{request['id']}/grant", "sam", {}), 404)
    assert world.access.grants_of("sam") == set()
    granted = world.send("POST", f"/requests/{request['id']}/grant", "rowan", {})
    assert granted.status_code == 200, granted.text
    assert granted.json()["status"] == "granted" and granted.json()["decided_by"] == "rowan"
    assert world.get("/collections/allotments", "sam").status_code == 200
    refused(world.send("POST", f"/requests/{request['id']}/refuse", "rowan", {}), 409, "granted")
    grants = world.get("/collections/allotments/grants", "rowan").json()["grants"]
    assert [(g["user"], g["granted_by"]) for g in grants] == [("sam", "rowan")]
    assert [e["detail"]["user"] for e in world.events("access request granted")] == ["sam"]
    assert [e["actor"] for e in world.events("access requested")] == ["sam"]
    # the grant taken back: sam no longer sees it
    gone = world.send("DELETE", "/collections/allotments/grants/sam", "rowan")
    assert gone.status_code == 204
    refused(world.get("/collections/allotments", "sam"), 404)
    refused(world.send("DELETE", "/collections/allotments/grants/sam", "rowan"), 404)
    assert [e["detail"]["user"] for e in world.events("grant revoked")] == ["sam"]


def test_asking_refused_and_what_cannot_be_asked(world: World) -> None:
    asked = world.send("POST", "/collections/allotments/requests", "tam", {}).json()
    refused_ = world.send("POST", f"/requests/{asked['id']}/refuse", "ada", {})
    assert refused_.status_code == 200 and refused_.json()["status"] == "refused"
    refused(world.get("/collections/allotments", "tam"), 404)
    assert world.access.grants_of("tam") == set()
    assert [e["actor"] for e in world.events("access request refused")] == ["ada"]
    mine = world.get("/requests?status=all", "tam").json()["mine"]
    assert [r["status"] for r in mine] == ["refused"]
    # who can see it already; nobody signed in; a private layer is not revealed
    refused(world.send("POST", "/collections/allotments/requests", "olive", {}), 409, "already")
    refused(world.send("POST", "/collections/aqma/requests", "sam", {}), 409, "already")
    refused(world.send("POST", "/collections/allotments/requests", "", {}), 401)
    refused(world.send("POST", "/collections/allotments/requests", "olive-read", {}), 403)
    world.send("PATCH", "/collections/allotments", "rowan", {"visibility": "private"})
    secret = world.send("POST", "/collections/allotments/requests", "sam", {})
    nothing = world.send("POST", "/collections/no_such_layer/requests", "sam", {})
    refused(secret, 404)
    assert secret.json()["description"] == nothing.json()["description"].replace(
        "no_such_layer", "allotments"
    )
    refused(world.send("POST", "/requests/000000/grant", "rowan", {}), 404)
    refused(world.get("/requests?status=maybe", "rowan"), 400)
    assert [r.user for r in world.access.list_requests(["allotments"])] == ["tam"]


def test_grants_given_by_hand(world: World) -> None:
    made = world.send("POST", "/collections/allotments/grants", "rowan", {"user": "tam"})
    assert made.status_code == 201, made.text
    assert made.json()["user"] == "tam" and made.json()["granted_by"] == "rowan"
    assert world.get("/collections/allotments", "tam").status_code == 200
    again = world.send("POST", "/collections/allotments/grants", "rowan", {"user": "tam"})
    assert again.status_code == 200
    assert len(world.events("access granted")) == 1
    refused(world.send("POST", "/collections/allotments/grants", "rowan", {"user": "zed"}), 404)
    refused(world.send("POST", "/collections/allotments/grants", "olive", {"user": "sam"}), 403)
    refused(world.send("POST", "/collections/allotments/grants", "sam", {"user": "sam"}), 404)
    world.send("PATCH", "/collections/allotments", "rowan", {"visibility": "private"})
    refused(
        world.send("POST", "/collections/allotments/grants", "rowan", {"user": "sam"}),
        409,
        "private",
    )
    assert world.access.grants_of("sam") == set()


# ---------------------------------------------------------------- audit
def test_the_audit_log_for_admins_stewards_and_nobody_else(world: World) -> None:
    world.send("PATCH", "/collections/aqma", "ada", {"title": "Air quality areas"})
    world.send("PUT", f"/groups/{GROUP}/members/sam", "rowan", {"role": "viewer"})
    world.send("PATCH", "/collections/allotments", "rowan", {"title": "Allotment sites"})
    world.send("POST", "/collections/allotments/links", "rowan", {})
    everything = world.get("/audit", "ada").json()
    actions = [e["action"] for e in everything["events"]]
    assert actions[:4] == ["link made", "update", "member set", "update"]
    assert everything["next"] is None
    stewards = [(e["action"], e["layer"]) for e in world.get("/audit", "rowan").json()["events"]]
    assert stewards == [("link made", "allotments"), ("update", "allotments"), ("member set", None)]
    # a read-only token reads what its account manages
    assert (
        world.get("/audit", "rowan-read").json()["events"]
        == world.get("/audit", "rowan").json()["events"]
    )
    refused(world.get("/audit", "olive"), 403, "audit log is read by")
    refused(world.get("/audit"), 401)
    refused(world.get("/audit?layer=aqma", "rowan"), 403, "layers you manage")
    refused(world.get("/audit?layer=hidden_one", "rowan"), 404)
    only = world.get("/audit?layer=allotments", "rowan").json()["events"]
    assert {e["layer"] for e in only} == {"allotments"}
    by_ada = world.get("/audit?user=ada", "ada").json()["events"]
    assert [e["action"] for e in by_ada] == ["update"]
    # pages: two at a time, newest first, no event twice
    first = world.get("/audit?limit=2", "ada").json()
    second = world.get(first["next"], "ada").json()
    ids = [e["id"] for e in first["events"] + second["events"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    assert ids == [e["id"] for e in everything["events"][:4]]


def test_every_route_declares_one_rule_and_its_refusals(world: World) -> None:
    doc = world.client.get("/openapi.json").json()
    ours = {
        ("get", "/groups"): "signed-in",
        ("post", "/groups"): "admin",
        ("get", "/groups/{group}"): "signed-in",
        ("put", "/groups/{group}/members/{user}"): "signed-in-writer",
        ("delete", "/groups/{group}/members/{user}"): "signed-in-writer",
        ("get", "/me/layers"): "signed-in",
        ("get", "/collections/{collectionId}/access"): "layer:manage",
        ("post", "/collections/{collectionId}/links"): "layer:manage",
        ("get", "/collections/{collectionId}/links"): "layer:manage",
        ("delete", "/collections/{collectionId}/links/{linkId}"): "layer:manage",
        ("get", "/collections/{collectionId}/grants"): "layer:manage",
        ("post", "/collections/{collectionId}/grants"): "layer:manage",
        ("delete", "/collections/{collectionId}/grants/{user}"): "layer:manage",
        ("post", "/collections/{collectionId}/requests"): "signed-in-writer",
        ("get", "/requests"): "signed-in",
        ("post", "/requests/{requestId}/grant"): "signed-in-writer",
        ("post", "/requests/{requestId}/refuse"): "signed-in-writer",
        ("get", "/audit"): "signed-in",
    }
    from fastapi import routing

    flatten = getattr(routing, "iter_route_contexts", None)
    app_routes: Any = world.client.app.routes  # type: ignore[attr-defined]
    found = {}
    for route in flatten(app_routes) if flatten else app_routes:
        original = getattr(route, "original_route", route)
        for method in getattr(route, "methods", None) or ():
            found[(method.lower(), str(getattr(route, "path_format", "")))] = rule_of(original)
    for (method, path), rule in ours.items():
        assert found.get((method, path)) == rule, (method, path)
        responses = doc["paths"][path][method]["responses"]
        assert "401" in responses, (method, path)
        ref = responses["401"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"

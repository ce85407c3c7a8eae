"""Real clients with credentials against a live ``landexplorer serve``, on both stores.

GDAL's OAPIF driver (through pyogrio, ``GDAL_HTTP_AUTH=BEARER`` and ``GDAL_HTTP_BEARER``)
and OWSLib (an ``Authorization`` header) read a group layer with a member's token and do
not see it without one; an expired or revoked token is a 401 in plain words; a read-only
token cannot upload.

The catalogue: ``allotments`` belongs to group ``orchard-club`` (visibility ``group``),
``aqma`` is public; ``olive`` is a viewer of the group, ``rowan`` a contributor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyogrio
import pytest
from pyogrio.errors import DataLayerError, DataSourceError

from landexplorer.access.store import AccessStore
from landexplorer.catalog import open_store
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings
from tests import live
from tests.conftest import STORE_BACKENDS
from tests.people import bearer, make_token
from tests.pg import PgCluster

ALLOTMENTS = "allotments/trafford_allotments.geojson"
AQMA = "air_quality_aqma/trafford_aqma.geojson"
GROUP = "orchard-club"
ALLOTMENT_COUNT = 35
AQMA_COUNT = 3


@dataclass
class Commons:
    """A live server over a catalogue with a group layer and a public layer."""

    url: str
    settings: Settings
    viewer: str  # olive's read token (viewer of orchard-club)
    contributor: str  # rowan's write token (contributor of orchard-club)
    outsider: str  # sam's write token (no group)
    log: Path  # the server's log file

    def access(self) -> contextlib.AbstractContextManager[AccessStore]:
        return open_access(self.settings)


@contextlib.contextmanager
def open_access(settings: Settings) -> Iterator[AccessStore]:
    store = open_store(settings)
    access = AccessStore.beside(store)
    try:
        yield access
    finally:
        access.close()
        store.close()


def build_catalogue(settings: Settings, real_data: Path) -> None:
    """``allotments`` (group layer of orchard-club, owned by rowan) and ``aqma`` (public)."""
    store = open_store(settings)
    try:
        ingest(
            store, [real_data / ALLOTMENTS], IngestOptions(id="allotments", licence="OGL-UK-3.0")
        )
        ingest(store, [real_data / AQMA], IngestOptions(id="aqma", licence="OGL-UK-3.0"))
        store.update_metadata("allotments", owner="rowan", group=GROUP, visibility="group")
        store.update_metadata("aqma", visibility="public")
    finally:
        store.close()


def fresh_settings(
    backend: str, tmp: Path, real_data: Path, request: pytest.FixtureRequest
) -> Settings:
    database_url = None
    if backend == "postgis":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        database_url = cluster.new_database()
    return Settings(data_dir=tmp / "data", demo_mirror=real_data, database_url=database_url)


@contextlib.contextmanager
def commons_on(
    backend: str,
    tmp: Path,
    real_data: Path,
    request: pytest.FixtureRequest,
    **env: str,
) -> Iterator[Commons]:
    settings = fresh_settings(backend, tmp, real_data, request)
    build_catalogue(settings, real_data)
    rowan = make_token(settings, "rowan", admin=False, scope="write", groups={GROUP: "contributor"})
    olive = make_token(settings, "olive", admin=False, scope="read", groups={GROUP: "viewer"})
    sam = make_token(settings, "sam", admin=False, scope="write")
    before = set(tmp.glob("serve-*.log"))
    with live.serve(settings.data_dir, database_url=settings.database_url, env=env) as url:
        (log,) = set(tmp.glob("serve-*.log")) - before
        yield Commons(url, settings, olive, rowan, sam, log)


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def commons(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, real_data: Path
) -> Iterator[Commons]:
    tmp = tmp_path_factory.mktemp(f"clients-{request.param}")
    with commons_on(request.param, tmp, real_data, request) as c:
        yield c


@contextlib.contextmanager
def gdal_bearer(token: str | None) -> Iterator[None]:
    """GDAL's own bearer-token options for the requests made inside the block."""
    options = {"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": token} if token else {}
    pyogrio.set_gdal_config_options(options)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})


@pytest.fixture
def owslib_headers() -> Iterator[None]:
    """OWSLib 0.35 updates one module-wide dict with the headers given to any client, so a
    token given once would go with every later client: put it back after each test."""
    from owslib import ogcapi

    saved = dict(ogcapi.REQUEST_HEADERS)
    yield
    ogcapi.REQUEST_HEADERS.clear()
    ogcapi.REQUEST_HEADERS.update(saved)


def test_gdal_supports_bearer_tokens() -> None:
    # GDAL_HTTP_AUTH=BEARER came in GDAL 3.9
    assert tuple(pyogrio.__gdal_version__) >= (3, 9, 0), pyogrio.__gdal_version__


def test_gdal_oapif_reads_the_group_layer_with_a_token(commons: Commons) -> None:
    src = f"OAPIF:{commons.url}"
    with gdal_bearer(commons.viewer):
        layers = {name for name, _ in pyogrio.list_layers(src)}
        assert {"allotments", "aqma"} <= layers
        frame = pyogrio.read_dataframe(src, layer="allotments")
        info = pyogrio.read_info(src, layer="allotments", force_feature_count=True)
    assert len(frame) == ALLOTMENT_COUNT == info["features"]
    assert frame.geometry.notna().all()


def test_gdal_oapif_without_a_token_sees_only_public_layers(commons: Commons) -> None:
    src = f"OAPIF:{commons.url}"
    with gdal_bearer(None):
        layers = {name for name, _ in pyogrio.list_layers(src)}
        assert "aqma" in layers
        assert "allotments" not in layers
        assert len(pyogrio.read_dataframe(src, layer="aqma")) == AQMA_COUNT
        with pytest.raises(DataLayerError, match="'allotments' could not be opened"):
            pyogrio.read_dataframe(src, layer="allotments")


def test_gdal_oapif_outsider_token_does_not_see_the_group_layer(commons: Commons) -> None:
    src = f"OAPIF:{commons.url}"
    with gdal_bearer(commons.outsider):
        layers = {name for name, _ in pyogrio.list_layers(src)}
    assert "aqma" in layers and "allotments" not in layers


def test_gdal_oapif_with_a_bad_token_fails_to_open(commons: Commons) -> None:
    with gdal_bearer("lxt_" + "x" * 43), pytest.raises(DataSourceError):
        pyogrio.list_layers(f"OAPIF:{commons.url}")


def test_owslib_reads_the_group_layer_with_a_token(commons: Commons, owslib_headers: None) -> None:
    from owslib.ogcapi.features import Features

    api = Features(commons.url, headers=bearer(commons.viewer))
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"allotments", "aqma"} <= ids
    assert api.collection("allotments")["id"] == "allotments"
    items = api.collection_items("allotments", limit=100)
    assert items["numberMatched"] == ALLOTMENT_COUNT == len(items["features"])
    one = api.collection_item("allotments", str(items["features"][0]["id"]))
    assert one["type"] == "Feature"


def test_owslib_without_a_token_does_not_see_it(commons: Commons, owslib_headers: None) -> None:
    from owslib.ogcapi.features import Features

    api = Features(commons.url)
    assert "Authorization" not in api.headers
    ids = {c["id"] for c in api.collections()["collections"]}
    assert "aqma" in ids and "allotments" not in ids
    with pytest.raises(RuntimeError, match="no collection called 'allotments'"):
        api.collection_items("allotments", limit=10)
    with pytest.raises(RuntimeError, match="no collection called 'allotments'"):
        api.collection("allotments")


def test_owslib_with_a_revoked_token_gets_plain_words(
    commons: Commons, owslib_headers: None
) -> None:
    from owslib.ogcapi.features import Features

    token = make_token(commons.settings, "olive", admin=False, scope="read")
    api = Features(commons.url, headers=bearer(token))
    assert api.collection_items("allotments", limit=1)["numberMatched"] == ALLOTMENT_COUNT
    with commons.access() as access:
        (info,) = [t for t in access.list_tokens("olive") if not t.revoked][-1:]
        assert access.revoke_token("olive", info.id)
    # another process revoked it: the server's short cache (2 s) lets it go at most that long
    with pytest.raises(RuntimeError, match="not valid: it may have expired or been revoked"):
        _until_refused(lambda: api.collection_items("allotments", limit=1))


def _until_refused(call: object, seconds: float = 5.0) -> None:
    """Call until it raises (the revocation came from another process), at most ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        call()  # type: ignore[operator]
        time.sleep(0.25)


def test_expired_token_is_401_in_plain_words(commons: Commons) -> None:
    token = make_token(commons.settings, "olive", admin=False, scope="read")
    r = httpx.get(commons.url + "/collections/allotments", headers=bearer(token))
    assert r.status_code == 200
    with commons.access() as access:
        info = [t for t in access.list_tokens("olive")][-1]
        # no call makes a token that has already expired: move this one's end into the past
        with access.db.tx() as cur:
            cur.run(
                "UPDATE access_secrets SET expires = ? WHERE id = ?",
                ("2000-01-01T00:00:00Z", info.id),
            )
    token_again = make_token(commons.settings, "olive", admin=False, scope="read")
    # a fresh token works; the expired one (never cached as valid after 2 s) is refused
    import time

    time.sleep(2.2)
    r = httpx.get(commons.url + "/collections/allotments", headers=bearer(token))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["code"] == "invalid-token"
    assert "may have expired or been revoked" in r.json()["description"]
    assert "Traceback" not in r.text
    assert httpx.get(
        commons.url + "/collections/allotments", headers=bearer(token_again)
    ).is_success


def test_revoked_token_is_401_through_the_api(commons: Commons) -> None:
    token = make_token(commons.settings, "rowan", admin=False, scope="write")
    made = httpx.post(
        commons.url + "/auth/tokens",
        json={"name": "script", "scope": "read", "days": 7},
        headers=bearer(token),
    )
    assert made.status_code == 201, made.text
    fresh = made.json()["token"]
    assert httpx.get(commons.url + "/collections/allotments", headers=bearer(fresh)).is_success
    gone = httpx.delete(commons.url + f"/auth/tokens/{made.json()['id']}", headers=bearer(token))
    assert gone.status_code == 204
    r = httpx.get(commons.url + "/collections/allotments", headers=bearer(fresh))
    # the same process revoked it: refused at once, no cache delay
    assert r.status_code == 401
    assert "not valid" in r.text and "revoked" in r.text


def test_other_schemes_are_401_with_the_way_to_do_it(commons: Commons) -> None:
    r = httpx.get(commons.url + "/collections", headers={"Authorization": "Basic b2xpdmU6eA=="})
    assert r.status_code == 401
    assert "Bearer lxt_" in r.text


def test_read_only_token_cannot_upload(commons: Commons, real_data: Path) -> None:
    with open(real_data / ALLOTMENTS, "rb") as fh:
        r = httpx.post(
            commons.url + "/collections",
            files={"file": ("more.geojson", fh)},
            data={"group": GROUP, "licence": "OGL-UK-3.0"},
            headers=bearer(commons.viewer),
        )
    assert r.status_code == 403
    assert "read-only token cannot change anything" in r.text
    ids = {c["id"] for c in httpx.get(commons.url + "/collections").json()["collections"]}
    assert ids == {"aqma"}  # nothing was added (anonymous sees the public layer only)


def test_contributor_token_can_upload_into_the_group(commons: Commons, real_data: Path) -> None:
    with open(real_data / ALLOTMENTS, "rb") as fh:
        r = httpx.post(
            commons.url + "/collections",
            files={"file": ("plots.geojson", fh)},
            data={"group": GROUP, "licence": "OGL-UK-3.0", "id": "plots"},
            headers=bearer(commons.contributor),
            timeout=60,
        )
    assert r.status_code == 202, r.text
    job = r.json()
    status = _wait_job(commons.url, job, commons.contributor)
    assert status["status"] == "successful", status
    doc = httpx.get(commons.url + "/collections/plots", headers=bearer(commons.contributor))
    assert doc.status_code == 200
    # new layers start private: the group's viewer does not see it, its owner does
    assert (
        httpx.get(commons.url + "/collections/plots", headers=bearer(commons.viewer)).status_code
        == 404
    )


def _wait_job(url: str, job: dict, token: str) -> dict:
    import time

    path = f"/jobs/{job['jobID']}"
    deadline = time.monotonic() + 60
    while True:
        status = httpx.get(url + path, headers=bearer(token)).json()
        if status.get("status") in ("successful", "failed", "dismissed"):
            return status
        if time.monotonic() > deadline:
            return status
        time.sleep(0.2)

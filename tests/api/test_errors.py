"""One error body for every error, and bad or hostile requests answered with a 4xx."""

from __future__ import annotations

import pytest

BAD = [
    ("/collections/no_such_layer", 404),
    ("/collections/no_such_layer/items", 404),
    ("/collections/allotments/items/999999", 404),
    ("/collections/allotments/items/abc", 404),
    ("/collections/allotments/items?bbox=1,2,3", 400),
    ("/collections/allotments/items?bbox=a,b,c,d", 400),
    ("/collections/allotments/items?bbox=10,10,0,0", 400),
    ("/collections/allotments/items?bbox=-2.4,53.4,-2.3,nan", 400),
    ("/collections/allotments/items?limit=0", 400),
    ("/collections/allotments/items?limit=50001", 400),  # past MAX_LIMIT
    ("/collections/allotments/items?limit=ten", 400),
    ("/collections/allotments/items?offset=-1", 400),
    ("/collections/allotments/items?filter=name%20%3D", 400),
    ("/collections/allotments/items?filter=name%3D'a'&filter-lang=sql", 400),
    ("/collections/allotments/items?filter=nosuchcolumn%20%3D%201", 400),
    ("/collections/allotments/items?crs=EPSG:9999", 400),
    ("/collections/allotments/items?f=xml", 400),
    ("/nowhere", 404),
]


def _assert_error_body(r, status):
    assert r.status_code == status, (r.request.url, r.text)
    body = r.json()
    assert set(body) == {"code", "description"}, body
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["description"], str) and len(body["description"]) > 10
    assert "Traceback" not in body["description"] and "/tmp" not in body["description"]


@pytest.mark.parametrize(("path", "status"), BAD)
def test_bad_requests_get_the_error_body(client, path, status):
    _assert_error_body(client.get(path), status)


def test_method_not_allowed_uses_the_error_body(client):
    _assert_error_body(client.delete("/conformance"), 405)


INJECTIONS = [
    "allotments'--",
    'allotments"; DROP TABLE landexplorer_layers; --',
    "allotments_v1",  # a storage table name is not a collection id
    "landexplorer_layers",
    "gpkg_contents",
    "..%2F..%2Fetc%2Fpasswd",
    "ALLOTMENTS",
]


@pytest.mark.parametrize("collection_id", INJECTIONS)
def test_injection_in_collection_ids_is_a_404(client, collection_id):
    _assert_error_body(client.get(f"/collections/{collection_id}/items"), 404)


@pytest.mark.parametrize(
    "text",
    [
        "name = 'x' OR 1=1",
        "name = 'x''; DROP TABLE landexplorer_layers; --'",
        '"name\\" = 1; --" = 1',
        "name = (SELECT 1)",
        "fid = 1",
        "geom IS NULL",
    ],
)
def test_injection_in_filters_is_refused_or_harmless(client, text):
    r = client.get("/collections/allotments/items", params={"filter": text, "limit": 100})
    if r.status_code == 200:
        # parsed as a plain value comparison: nothing beyond what the value matches
        assert r.json()["numberMatched"] == 0
    else:
        _assert_error_body(r, 400)
    assert client.get("/collections/allotments/items").json()["numberMatched"] == 35


def test_property_filter_with_quote_is_a_value(client):
    r = client.get("/collections/allotments/items", params={"name": "x' OR '1'='1"})
    assert r.status_code == 200 and r.json()["numberMatched"] == 0


def test_hidden_layers_are_not_revealed(store, settings):
    """A private layer answers 404 to anonymous callers and to people outside its group
    (never 403: that would say it exists), and a site admin reads it; a token that is not
    valid is a 401 that names no layer."""
    import warnings

    from landexplorer.api import create_app
    from landexplorer.layers.ingest import IngestOptions, ingest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    src = settings.resolved_demo_mirror() / "allotments" / "trafford_allotments.geojson"
    ingest(store, [src], IngestOptions(id="secret", licence="OGL-UK-3.0", visibility="private"))
    from tests.people import bearer, make_token

    admin = bearer(make_token(settings))
    outsider = bearer(make_token(settings, "outsider", admin=False, groups={"walkers": "steward"}))
    with TestClient(create_app(settings)) as c:
        for who, refused in (({}, 401), (outsider, 404)):
            _assert_error_body(c.get("/collections/secret", headers=who), 404)
            _assert_error_body(c.get("/collections/secret/items", headers=who), 404)
            # a change is refused exactly as for a layer that does not exist
            gone = c.delete("/collections/secret", headers=who)
            _assert_error_body(gone, refused)
            never = c.delete("/collections/never_was", headers=who)
            assert never.status_code == refused
            assert never.text.replace("never_was", "secret") == gone.text
            listed = c.get("/collections", headers=who).json()["collections"]
            assert "secret" not in {x["id"] for x in listed}
        assert c.get("/collections/secret/items", headers=admin).json()["numberMatched"] == 35
        r = c.get("/collections/secret", headers={"Authorization": "Bearer no"})
        _assert_error_body(r, 401)
        assert "secret" not in r.text

"""The attack battery of issue 9, case by case, against a live server on each store.

Every case passes only if the server answers without a 5xx (503/504 only where the time
budget or the overload guard is the point), in plain words, stays alive and under its
memory ceiling (``guard`` in conftest.py); the catalogue is compared after the last case.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.attack import raw
from tests.attack.checks import BUDGET, ok_or_plain, plain_error
from tests.attack.conftest import Target

#: A square of about 100 m in Trafford (lon/lat), the unit of the drawn-area attacks.
SQUARE = [[-2.35, 53.42], [-2.349, 53.42], [-2.349, 53.421], [-2.35, 53.421], [-2.35, 53.42]]


def get(target: Target, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(target.url + path, timeout=kw.pop("timeout", 60), **kw)


def post(target: Target, path: str, **kw: Any) -> httpx.Response:
    return httpx.post(target.url + path, timeout=kw.pop("timeout", 60), **kw)


def conformance_seconds(target: Target) -> float:
    t = time.perf_counter()
    r = get(target, "/conformance", timeout=30)
    assert r.status_code == 200, r.text[:200]
    return time.perf_counter() - t


def items(target: Target, layer: str, query: str) -> httpx.Response:
    """GET items with a query string built by hand (spaces as '+', commas left alone), so
    a filter is as short on the wire as a browser would send it."""
    return get(target, f"/collections/{layer}/items?{query}")


def cql_query(text: str, lang: str = "cql2-text", extra: str = "") -> str:
    q = quote(text, safe=",()'=").replace("%20", "+")
    return f"filter-lang={lang}&filter={q}{extra}"


# ---- CQL2 built to break the parser ---------------------------------------------------------
def test_cql2_nested_parentheses(target: Target) -> None:
    text = "(" * 2000 + "name = 'Firswood'" + ")" * 2000
    r = items(target, "allotments", cql_query(text))
    plain_error(r.status_code, r.content, "2,000 nested parentheses")


def test_cql2_many_nots(target: Target) -> None:
    text = "NOT " * 4000 + "name = 'Firswood'"
    r = items(target, "allotments", cql_query(text))
    plain_error(r.status_code, r.content, "4,000 NOTs")


@pytest.mark.parametrize("depth", [100, 700])
def test_cql2_json_deep(target: Target, depth: int) -> None:
    inner = '{"op":"=","args":[{"property":"name"},"Firswood"]}'
    text = '{"op":"not","args":[' * depth + inner + "]}" * depth
    r = items(target, "allotments", cql_query(text, "cql2-json"))
    plain_error(r.status_code, r.content, f"CQL2 JSON {depth} deep")


def test_cql2_wide(target: Target) -> None:
    """Not deep but wide: 1,500 ORed comparisons (about 19,000 characters)."""
    text = " OR ".join(f"name='a{i}'" for i in range(1500))
    r = items(target, "allotments", cql_query(text))
    ok_or_plain(r, "1,500 ORs")


@pytest.mark.parametrize(
    "text", ["(" * 2000 + "a = 1" + ")" * 2000, "NOT " * 4000 + "a = 1", "(" * 30000]
)
def test_cql2_parser_directly(target: Target, text: str) -> None:
    """The filter parser itself, in a process of its own (a crash must not take pytest)."""
    code = (
        "import sys\n"
        "from landexplorer.api.cql2 import parse_filter\n"
        "from landexplorer.errors import InputError\n"
        "try:\n"
        "    parse_filter(sys.stdin.read(), 'cql2-text', ['a'])\n"
        "except InputError as e:\n"
        "    print('refused:', e.public)\n"
        "else:\n"
        "    print('accepted')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], input=text, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, f"the parser crashed ({run.returncode}): {run.stderr[-500:]}"
    assert run.stdout.startswith("refused:"), run.stdout


# ---- analysis that would take all the memory -----------------------------------------------
def test_report_5000_identical_squares(target: Target) -> None:
    area = {"type": "MultiPolygon", "coordinates": [[SQUARE]] * 5000}
    r = post(target, "/analysis/report", json={"area": area})
    plain_error(r.status_code, r.content, "report of 5,000 identical squares")


def test_report_900_identical_squares(target: Target) -> None:
    """Under the part limit: done, or refused in words, or stopped by the budget."""
    area = {"type": "MultiPolygon", "coordinates": [[SQUARE]] * 900}
    r = post(target, "/analysis/report", json={"area": area})
    ok_or_plain(r, "report of 900 identical squares")


def test_report_many_vertices(target: Target) -> None:
    ring = [
        [-2.35 + 0.01 * math.cos(2 * math.pi * i / 200_000), 53.42 + 0.01 * math.sin(i / 1e4)]
        for i in range(200_000)
    ]
    ring.append(ring[0])
    r = post(target, "/analysis/report", json={"area": {"type": "Polygon", "coordinates": [ring]}})
    plain_error(r.status_code, r.content, "report polygon of 200,000 vertices")


def test_compare_street_trees_self_100km(target: Target) -> None:
    body = {
        "left": "street_trees",
        "right": "street_trees",
        "predicate": "within-distance",
        "distance": 100_000,
    }
    r = post(target, "/analysis/compare", json=body)
    doc = plain_error(r.status_code, r.content, "street_trees x street_trees within 100 km")
    assert r.status_code in (413, 422), doc


def test_zonal_whole_raster_per_polygon(target: Target) -> None:
    body = {"layer": "flood_risk", "raster": "elevation", "stats": ["mean", "max"]}
    r = post(target, "/analysis/zonal", json=body)
    ok_or_plain(r, "zonal of every flood polygon")


# ---- bodies that never end -------------------------------------------------------------------
def _multipart_head(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="licence"\r\n\r\nOGL-UK-3.0\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nlon,lat\r\n"
    ).encode()


def _endless(first: bytes, piece: bytes) -> Any:
    yield first
    yield from raw.repeat(piece, 2 << 30)  # 2 GB, never all sent


@pytest.mark.parametrize("path", ["/maps", "/analysis/report", "/collections"])
def test_two_gigabytes_chunked(target: Target, path: str) -> None:
    assert target.sampler is not None
    before = target.sampler.rss_mb()
    if path == "/collections":
        boundary = "attackboundary1234"
        headers = {**target.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        body = _endless(_multipart_head(boundary), b"-2.35,53.42\r\n" * 5000)
        allowed = 5 << 20  # the server's max_upload_mb
    else:
        headers = {"Content-Type": "application/json"}
        body = _endless(b'{"title": "', b"a" * 65536)
        allowed = 1 << 20  # max_json_kb
    r = raw.stream(target.url, "POST", path, headers, body, stop_after=64 << 20, timeout=15)
    grown = target.sampler.window_mb - before
    assert r.status in (413, 429), f"{path}: {r.status} after {r.sent:,} bytes {r.body[:200]!r}"
    plain_error(r.status, r.body, f"2 GB chunked to {path}")
    # refused at the limit: what was sent past it is what sat in the socket buffers
    assert r.sent < allowed + (16 << 20), f"{path}: {r.sent:,} bytes were taken first"
    assert grown < 150, f"{path}: the server grew by {grown:.0f} MB"
    assert conformance_seconds(target) < 2


@pytest.mark.parametrize("path", ["/maps", "/analysis/report", "/collections"])
def test_two_gigabytes_declared(target: Target, path: str) -> None:
    """A Content-Length of 2 GB is refused before a byte of the body is read."""
    headers = {**target.auth, "Content-Type": "application/json", "Content-Length": str(2 << 30)}
    r = raw.stream(target.url, "POST", path, headers, iter([b"{"]), chunked=False, timeout=10)
    assert r.status in (413, 429), (r.status, r.body[:200])
    plain_error(r.status, r.body, f"Content-Length 2 GB to {path}")
    assert r.seconds < 3


# ---- Content-Length lies ---------------------------------------------------------------------
def _request(path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("latin-1") + b"\r\n" + body


LIES = {
    "shorter than the body": ([("Content-Length", "20")], b'{"area": ' + b" " * (1 << 20) + b"}"),
    "longer than the body": ([("Content-Length", "5000")], b'{"area": {}}'),
    "negative": ([("Content-Length", "-1")], b"{}"),
    "not a number": ([("Content-Length", "lots")], b"{}"),
    "two different": ([("Content-Length", "2"), ("Content-Length", "40")], b"{}"),
    "with chunked too": (
        [("Content-Length", "4"), ("Transfer-Encoding", "chunked")],
        b"2\r\n{}\r\n0\r\n\r\nGET /conformance HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "bad chunk size": ([("Transfer-Encoding", "chunked")], b"zz\r\n{}\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("lie", list(LIES))
@pytest.mark.parametrize("path", ["/analysis/report", "/maps"])
def test_content_length_lies(target: Target, path: str, lie: str) -> None:
    headers, body = LIES[lie]
    r = raw.send(target.url, _request(path, headers, body), timeout=12, half_close=True)
    if r.status is not None:  # closing the connection is a fine answer to nonsense
        ok_or_plain(r, f"Content-Length {lie} to {path}", allow=frozenset())
    assert r.seconds < 12, "the server hung on the connection"
    assert conformance_seconds(target) < 1


# ---- headers -------------------------------------------------------------------------------
HEADERS = {
    "one 4 MB header": b"X-Big: " + b"a" * (4 << 20) + b"\r\n",
    "100,000 small headers": b"".join(b"X-%d: 1\r\n" % i for i in range(100_000)),
    "a 1 MB cookie": b"Cookie: " + b"c=" + b"b" * (1 << 20) + b"\r\n",
}


@pytest.mark.parametrize("case", list(HEADERS))
def test_huge_headers(target: Target, case: str) -> None:
    request = b"GET /conformance HTTP/1.1\r\nHost: 127.0.0.1\r\n" + HEADERS[case] + b"\r\n"
    r = raw.send(target.url, request, timeout=10)
    assert r.status in (400, 431), f"{case}: {r.status} after {r.sent:,} bytes"
    assert r.seconds < 5, f"{case}: {r.seconds:.1f} s to refuse"
    assert conformance_seconds(target) < 1


def test_huge_request_line(target: Target) -> None:
    request = b"GET /conformance?x=" + b"a" * (2 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    r = raw.send(target.url, request, timeout=10)
    assert r.status in (400, 414, 431), f"{r.status} after {r.sent:,} bytes"
    assert r.seconds < 5
    assert conformance_seconds(target) < 1


# ---- heavy filters in parallel: the event loop must stay free -------------------------------
def _polygon_27700(vertices: int, cx: float, cy: float, radius: float) -> str:
    """A star-shaped ring in British National Grid metres (integers: short on the wire)."""
    pts = []
    for i in range(vertices):
        a = 2 * math.pi * i / vertices
        r = radius * (1.0 if i % 2 else 0.6)
        pts.append(f"{round(cx + r * math.cos(a))} {round(cy + r * math.sin(a))}")
    pts.append(pts[0])
    return "POLYGON((" + ",".join(pts) + "))"


#: How slow /conformance (4 ms when idle) may get while three heavy filters run: generous for
#: a loaded 2-core machine, far under the 34 s the issue saw with the work on the event loop.
SLOWEST_S = float(os.environ.get("LANDEXPLORER_ATTACK_SLOWEST_S", "2.0"))


@pytest.mark.parametrize("layer", ["many_points", "street_trees"])
def test_parallel_heavy_filters_keep_the_loop_free(target: Target, layer: str) -> None:
    polygons = [_polygon_27700(900, 378_000 + 1500 * k, 394_000, 4000) for k in range(3)]
    answers: list[httpx.Response | Exception] = []

    def heavy(wkt: str) -> None:
        query = cql_query(
            f"S_INTERSECTS(geometry,{wkt})",
            extra="&filter-crs=http://www.opengis.net/def/crs/EPSG/0/27700&limit=1000",
        )
        try:
            answers.append(items(target, layer, query))
        except Exception as exc:
            answers.append(exc)

    threads = [threading.Thread(target=heavy, args=(p,)) for p in polygons]
    for t in threads:
        t.start()
    slowest = 0.0
    while any(t.is_alive() for t in threads):
        slowest = max(slowest, conformance_seconds(target))
        time.sleep(0.05)
    for t in threads:
        t.join()
    for a in answers:
        assert not isinstance(a, Exception), repr(a)
        ok_or_plain(a, f"900-vertex S_INTERSECTS over {layer}")
    assert slowest < SLOWEST_S, f"/conformance took {slowest:.2f} s while the filters ran"


# ---- odd addresses and values ----------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/collections/allotments/items/%C2%B2",
        "/collections/allotments/items/%FF%FE",
        "/collections/allotments/items/1e400",
        "/collections/allotments/items/-99999999999999999999999",
        "/collections/%00/items",
        "/collections/allotments%00/items",
        "/web/a%00.js",
        "/web/..%2F..%2Fpyproject.toml",
        "/web/%C0%AE%C0%AE/x.js",
        "/tiles/allotments/40/0/0.mvt",
        "/tiles/elevation/14/99999999/0.png",
        "/collections/allotments/items?bbox=nan,nan,nan,nan",
        "/collections/allotments/items?bbox=-1e400,0,1e400,1",
        "/collections/allotments/items?limit=99999999999999999999",
        "/collections/allotments/items?offset=-1",
        "/collections/allotments/items?crs=EPSG:99999999",
        "/collections/allotments/items?name=%00",
        "/m/%00",
        "/maps/..%2F..%2Flandexplorer",
    ],
)
def test_odd_addresses(target: Target, path: str) -> None:
    r = get(target, path)
    ok_or_plain(r, path, allow=frozenset())


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_report_non_finite_coordinates(target: Target, value: str) -> None:
    ring = json.dumps(SQUARE).replace("53.421", value, 1)
    body = '{"area": {"type": "Polygon", "coordinates": [' + ring + "]}}"
    r = post(target, "/analysis/report", content=body, headers={"Content-Type": "application/json"})
    plain_error(r.status_code, r.content, f"report polygon with {value}")


# ---- writes that must be refused -------------------------------------------------------------
GEOJSON = json.dumps(
    {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "x"},
                "geometry": {"type": "Point", "coordinates": [-2.35, 53.42]},
            }
        ],
    }
).encode()


def _job_refused(target: Target, r: httpx.Response, what: str) -> None:
    """A refusal at once (4xx in words), or an accepted job that ends failed."""
    if r.status_code != 202:
        plain_error(r.status_code, r.content, what)
        return
    job = r.headers["Location"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        url = job if job.startswith("http") else target.url + job
        doc = httpx.get(url, headers=target.auth, timeout=30).json()
        if doc["status"] in ("successful", "failed", "dismissed"):
            assert doc["status"] == "failed", f"{what} was accepted: {doc}"
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: the job never finished")


@pytest.mark.parametrize("licence", [" ", "\t", "", "not a licence at all"])
def test_blank_licence_refused(target: Target, licence: str) -> None:
    r = post(
        target,
        "/collections",
        headers=target.auth,
        data={"id": "blank_licence", "licence": licence, "visibility": "public"},
        files={"file": ("sites.geojson", GEOJSON, "application/geo+json")},
    )
    _job_refused(target, r, f"licence {licence!r}")
    r = httpx.patch(
        target.url + "/collections/allotments",
        headers=target.auth,
        json={"licence": licence},
        timeout=30,
    )
    plain_error(r.status_code, r.content, f"PATCH licence {licence!r}")


@pytest.mark.parametrize(
    "layer_id",
    ["landexplorer_layers", "gpkg_contents", "rtree_allotments_v1_geom", "sqlite_master",
     "gpkg_spatial_ref_sys", "landexplorer_jobs"],
)  # fmt: skip
def test_reserved_ids_refused(target: Target, layer_id: str) -> None:
    r = post(
        target,
        "/collections",
        headers=target.auth,
        data={"id": layer_id, "licence": "OGL-UK-3.0"},
        files={"file": ("sites.geojson", GEOJSON, "application/geo+json")},
    )
    _job_refused(target, r, f"id {layer_id}")


# ---- forwarded headers from a client that is no proxy ----------------------------------------
def test_untrusted_forwarded_headers_not_in_links(target: Target) -> None:
    headers = {
        "Host": "evil.example.org",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example.org",
        "X-Forwarded-For": "203.0.113.9",
        "Forwarded": "for=203.0.113.9;host=evil.example.org;proto=https",
    }
    for path in ["/", "/collections", "/collections/allotments/items?limit=1", "/conformance"]:
        r = get(target, path, headers={**headers, "Accept": "application/json"})
        assert r.status_code in (200, 400, 421), (path, r.status_code)
        if r.status_code != 200:
            plain_error(r.status_code, r.content, f"{path} with a foreign Host")
            continue
        text = r.text
        assert "evil.example" not in text, f"{path}: the client's Host is in the links"
        assert "https://127.0.0.1" not in text, f"{path}: the client's proto is in the links"
        assert "evil.example" not in r.headers.get("location", "")


# ---- saved maps -----------------------------------------------------------------------------
def _map(shapes: int = 0, vertices: int = 0) -> dict[str, Any]:
    ring = [[-2.35 + i * 1e-6, 53.42] for i in range(vertices)] + [[-2.35, 53.42]]
    line = {"type": "LineString", "coordinates": ring}
    feature = {"type": "Feature", "properties": {}, "geometry": line}
    return {
        "title": "attack",
        "view": {"center": [53.42, -2.35], "zoom": 12},
        "layers": [{"id": "allotments"}],
        "shapes": {"type": "FeatureCollection", "features": [feature] * shapes} if shapes else None,
    }


def test_saved_map_over_the_size_limit(target: Target) -> None:
    body = _map(shapes=10, vertices=2000)  # ~ 500 KB: over maps_max_kb, under max_json_kb
    assert 300_000 < len(json.dumps(body)) < 1_000_000
    r = post(target, "/maps", json=body)
    assert r.status_code in (413, 429), (r.status_code, r.text[:200])
    plain_error(r.status_code, r.content, "a 500 KB saved map")


def test_saved_maps_rate_limited_per_client(target: Target) -> None:
    """More than maps_per_minute saves from one client in a minute: 429 in words, even when
    the client claims to be someone else each time (it is not a trusted proxy)."""
    codes = []
    for i in range(14):
        r = post(target, "/maps", json=_map(), headers={"X-Forwarded-For": f"198.51.100.{i}"})
        codes.append(r.status_code)
        if r.status_code != 201:
            plain_error(r.status_code, r.content, "saved map past the rate limit")
    assert 429 in codes, f"14 saves in a row were all accepted: {codes}"
    assert codes.count(201) <= 10, codes
    assert all(c in (201, 429) for c in codes), codes


def test_budget_is_plain(target: Target) -> None:
    """Any 503/504 the server gives says so in words (checked on a tile storm at z0..2)."""
    for z in range(3):
        for x in range(2**z):
            r = get(target, f"/tiles/flood_risk/{z}/{x}/0.mvt")
            ok_or_plain(r, f"tile {z}/{x}/0", allow=BUDGET)

"""Property-based fuzzing (hypothesis) of what the public sends: CQL2 text and JSON filters,
bbox strings, GeoJSON bodies of area reports, and multipart uploads (with the token).

The property is the battery's: whatever comes in, the answer is a success or a 4xx in plain
words (503/504 only from the time budget or the overload guard), and the server lives on
under its memory ceiling (``guard``). Bounded: about 100 examples per property, no deadline.
Runs are reproducible (derandomised); LANDEXPLORER_FUZZ_RANDOM=1 explores new examples.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.attack.checks import ok_or_plain
from tests.attack.conftest import Target

FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=os.environ.get("LANDEXPLORER_FUZZ_RANDOM") != "1",
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
_client = httpx.Client(timeout=60)


def _items(target: Target, layer: str, query: str) -> httpx.Response:
    return _client.get(f"{target.url}/collections/{layer}/items?{query}&limit=5")


# ---- CQL2 text ---------------------------------------------------------------------------
PROPS = st.sampled_from(["name", "osm_id", "geometry", "fid", "Name", "nope", '"name"', "n a"])
NUMBERS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e400", "-0", "0x10", ".5", "5.", "1_000"]),
)
STRINGS = st.text(max_size=20).map(lambda s: "'" + s.replace("'", "''") + "'") | st.text(
    max_size=10
).map(lambda s: "'" + s + "'")
COORD = st.tuples(
    st.floats(-3, -2, allow_nan=False) | st.floats(allow_nan=True, allow_infinity=True),
    st.floats(53, 54, allow_nan=False) | st.floats(allow_nan=True, allow_infinity=True),
).map(lambda xy: f"{xy[0]!r} {xy[1]!r}")
WKT = st.one_of(
    COORD.map(lambda c: f"POINT({c})"),
    st.lists(COORD, min_size=0, max_size=12).map(lambda cs: f"POLYGON(({','.join(cs)}))"),
    st.lists(COORD, min_size=0, max_size=6).map(lambda cs: f"LINESTRING({','.join(cs)})"),
    st.sampled_from(["POLYGON EMPTY", "GEOMETRYCOLLECTION(POINT(1 2))", "POINT(1)", "BBOX(1,2)"]),
)
OPS = st.sampled_from(["=", "<>", "<", "<=", ">", ">=", "!=", "==", "LIKE", "ILIKE", "~"])
ATOM = st.one_of(
    st.builds(lambda p, o, v: f"{p} {o} {v}", PROPS, OPS, NUMBERS | STRINGS),
    st.builds(lambda p, vs: f"{p} IN ({','.join(vs)})", PROPS, st.lists(STRINGS, max_size=5)),
    st.builds(lambda p, a, b: f"{p} BETWEEN {a} AND {b}", PROPS, NUMBERS, NUMBERS),
    st.builds(lambda p: f"{p} IS NULL", PROPS),
    st.builds(lambda p: f"{p} IS NOT NULL", PROPS),
    st.builds(lambda p, w: f"S_INTERSECTS({p},{w})", PROPS, WKT),
    st.sampled_from(["TRUE", "FALSE", "name", "()", "NOT", "AND", "'", "S_INTERSECTS("]),
)
CQL2_TEXT = st.recursive(
    ATOM,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} AND {b}", inner, inner),
        st.builds(lambda a, b: f"{a} OR {b}", inner, inner),
        st.builds(lambda a: f"NOT {a}", inner),
        st.builds(lambda a: f"({a}", inner),
        st.builds(lambda a: f"({a})", inner),
    ),
    max_leaves=30,
)
NOISE = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)


@FUZZ
@given(text=CQL2_TEXT | NOISE)
def test_fuzz_cql2_text(target: Target, text: str) -> None:
    r = _items(target, "allotments", "filter=" + quote(text, safe=""))
    ok_or_plain(r, f"cql2-text {text[:200]!r}")


# ---- CQL2 JSON ---------------------------------------------------------------------------
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=15),
    st.fixed_dictionaries({"property": PROPS}),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Point", "Polygon", "LineString", "Nope"]),
            "coordinates": st.lists(st.lists(st.floats(-200, 200), max_size=3), max_size=5),
        }
    ),
)
JSON_OPS = st.sampled_from(
    ["=", "<>", "<", ">", "and", "or", "not", "like", "in", "between", "isNull",
     "s_intersects", "t_before", "casei", "accenti", "+", "nope"]
)  # fmt: skip
CQL2_JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.fixed_dictionaries({"op": JSON_OPS, "args": st.lists(inner, max_size=4)}),
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=6), inner, max_size=3),
    ),
    max_leaves=25,
)


@FUZZ
@given(tree=CQL2_JSON)
def test_fuzz_cql2_json(target: Target, tree: Any) -> None:
    text = json.dumps(tree)
    r = _items(target, "allotments", "filter-lang=cql2-json&filter=" + quote(text, safe=""))
    ok_or_plain(r, f"cql2-json {text[:200]!r}")


# ---- bbox ---------------------------------------------------------------------------------
BBOX_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-180, 180).map(lambda f: f"{f:.4f}"),
    st.integers(-(10**25), 10**25).map(str),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e999", "0x1p3", "١", "1,5", "+1"]),
)
BBOX = st.one_of(
    st.lists(BBOX_NUMBER, min_size=0, max_size=8).map(",".join),
    st.text(max_size=60),
)
BBOX_CRS = st.sampled_from(
    [None, "EPSG:27700", "EPSG:3857", "http://www.opengis.net/def/crs/EPSG/0/4326",
     "EPSG:0", "EPSG:999999", "nope", ""]
)  # fmt: skip


@FUZZ
@given(bbox=BBOX, crs=BBOX_CRS, layer=st.sampled_from(["allotments", "street_trees"]))
def test_fuzz_bbox(target: Target, bbox: str, crs: str | None, layer: str) -> None:
    query = "bbox=" + quote(bbox, safe="")
    if crs is not None:
        query += "&bbox-crs=" + quote(crs, safe="")
    r = _items(target, layer, query)
    ok_or_plain(r, f"bbox {bbox!r} bbox-crs {crs!r} on {layer}")


# ---- GeoJSON report bodies ---------------------------------------------------------------
def _ring(points: list[tuple[float, float]]) -> list[list[float]]:
    return [[x, y] for x, y in points] + ([[points[0][0], points[0][1]]] if points else [])


LONLAT = st.tuples(st.floats(-2.5, -2.2), st.floats(53.35, 53.48))
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**40), 10**40)
POSITION = st.one_of(
    LONLAT.map(list),
    st.lists(ANY_FLOAT, min_size=0, max_size=4),
    st.just([]),
    st.text(max_size=4),
)
RING = st.one_of(
    st.lists(LONLAT, min_size=3, max_size=30).map(_ring),
    st.lists(POSITION, max_size=8),
)
POLYGON = st.lists(RING, min_size=0, max_size=3)
GEOMETRY = st.one_of(
    st.fixed_dictionaries({"type": st.just("Polygon"), "coordinates": POLYGON}),
    st.fixed_dictionaries(
        {"type": st.just("MultiPolygon"), "coordinates": st.lists(POLYGON, max_size=4)}
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Point", "LineString", "GeometryCollection", "polygon", ""]),
            "coordinates": st.lists(POSITION, max_size=4),
        }
    ),
    st.dictionaries(st.sampled_from(["type", "coordinates", "geometries"]), JSON_LEAF),
)
AREA = st.one_of(
    GEOMETRY,
    st.builds(lambda g: {"type": "Feature", "properties": {}, "geometry": g}, GEOMETRY),
    st.builds(
        lambda gs: {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "geometry": g} for g in gs],
        },
        st.lists(GEOMETRY, max_size=3),
    ),
    JSON_LEAF,
)
LAYERS = st.one_of(
    st.none(),
    st.lists(st.sampled_from(["allotments", "flood_risk", "elevation", "nope", ""]), max_size=3),
)


@FUZZ
@given(area=AREA, layers=LAYERS, extra=st.dictionaries(st.sampled_from(["by", "x"]), JSON_LEAF))
def test_fuzz_report_bodies(target: Target, area: Any, layers: Any, extra: dict) -> None:
    body: dict[str, Any] = {"area": area, **extra}
    if layers is not None:
        body["layers"] = layers
    text = json.dumps(body)  # NaN and Infinity go out as the bare words JavaScript writes
    r = _client.post(
        target.url + "/analysis/report",
        content=text,
        headers={"Content-Type": "application/json"},
    )
    ok_or_plain(r, f"report {text[:300]}")


# ---- multipart uploads (with the token) --------------------------------------------------
CSV = st.builds(
    lambda head, rows: (head + "\n" + "\n".join(rows)).encode(),
    st.sampled_from(["lon,lat", "x,y,name", "easting,northing", "lon,lon,lat", "a;b", ""]),
    st.lists(
        st.lists(st.one_of(ANY_FLOAT.map(str), st.text(max_size=6)), min_size=0, max_size=4).map(
            ",".join
        ),
        max_size=8,
    ),
)
GEOJSON_FILE = AREA.map(lambda a: json.dumps(a).encode())
CONTENT = st.one_of(
    st.binary(max_size=2048),
    CSV,
    GEOJSON_FILE,
    st.sampled_from([b"PK\x03\x04" + b"\x00" * 60, b"\xff\xd8\xff", b"II*\x00" + b"\x00" * 40]),
)
FILENAME = st.builds(
    lambda stem, ext: stem + ext,
    st.text(max_size=12),
    st.sampled_from([".csv", ".geojson", ".json", ".kml", ".zip", ".gpkg", ".tif", ".fgb",
                     ".parquet", ".asc", "", ".exe", "/../../x.csv"]),
)  # fmt: skip
FIELD_TEXT = st.text(max_size=30)
FIELDS = st.fixed_dictionaries(
    {"id": st.from_regex(r"fz_[a-z0-9_]{1,10}", fullmatch=True) | FIELD_TEXT},
    optional={
        "title": FIELD_TEXT,
        "licence": st.sampled_from(["OGL-UK-3.0", "CC-BY-4.0", " ", "MIT AND", ""]) | FIELD_TEXT,
        "attribution": FIELD_TEXT,
        "kind": st.sampled_from(["open", "community", "reference", "nope", ""]),
        "visibility": st.sampled_from(["public", "private", "nope", ""]),
        "crs": st.sampled_from(["EPSG:27700", "EPSG:4326", "EPSG:0", "nope", ""]),
        "x": FIELD_TEXT,
        "y": FIELD_TEXT,
        "wkt": FIELD_TEXT,
    },
)


def _layer_ids(target: Target) -> set[str]:
    doc = _client.get(target.url + "/collections", headers=target.auth, params={"f": "json"}).json()
    return {c["id"] for c in doc["collections"]}


def _wait_job(target: Target, r: httpx.Response) -> None:
    href = r.headers.get("location", "")
    url = href if href.startswith("http") else target.url + href
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        j = _client.get(url, headers=target.auth)
        ok_or_plain(j, f"job {href}")
        if j.json().get("status") in ("successful", "failed", "dismissed"):
            return
        time.sleep(0.1)
    raise AssertionError(f"the upload job {href} never finished")


def test_fuzz_multipart_uploads(target: Target) -> None:
    """Uploads of fuzzed files and fields: refused in words, or loaded as a new layer (which
    is deleted again, so the catalogue is compared unchanged at the end)."""
    before = _layer_ids(target)

    @settings(FUZZ, max_examples=60)
    @given(content=CONTENT, filename=FILENAME, fields=FIELDS)
    def upload(content: bytes, filename: str, fields: dict[str, str]) -> None:
        r = _client.post(
            target.url + "/collections",
            headers=target.auth,
            data=fields,
            files={"file": (filename, content, "application/octet-stream")},
        )
        ok_or_plain(r, f"upload {filename!r} {fields} {content[:80]!r}")
        if r.status_code == 202:
            _wait_job(target, r)

    try:
        upload()
    finally:
        for layer_id in _layer_ids(target) - before:
            d = _client.delete(f"{target.url}/collections/{layer_id}", headers=target.auth)
            assert d.status_code in (200, 204), (layer_id, d.status_code, d.text[:200])

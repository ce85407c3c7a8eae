"""POST /analysis/*: oversized areas and work are refused fast, in plain words, with small
memory, on both stores; a live server's peak memory barely moves under the attacks."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import httpx
import psutil
import pytest
import shapely

from landexplorer.api import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SQUARE = [[[-2.36, 53.40], [-2.33, 53.40], [-2.33, 53.42], [-2.36, 53.42], [-2.36, 53.40]]]
#: 5,000 identical squares (0.4 MB): once grew the server to 6.8 GB, then a 500
SQUARES = {"type": "MultiPolygon", "coordinates": [SQUARE] * 5_000}
#: every tree against every tree within 100 km: once grew the server to 5 GB
SELF_100_KM = {
    "left": "street_trees",
    "right": "street_trees",
    "predicate": "within-distance",
    "distance": 100_000,
}


def _refused(r: httpx.Response, status: int, code: str, *words: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code
    for word in words:
        assert word in body["description"], body["description"]
    return str(body["description"])


def test_five_thousand_squares_report_is_413_fast(client):
    t0 = time.perf_counter()
    r = client.post("/analysis/report", json={"area": SQUARES})
    assert time.perf_counter() - t0 < 5
    _refused(r, 413, "too-large", "1,000 pieces", "fewer shapes")
    # the same area as a compare's area
    r = client.post(
        "/analysis/compare", json={"left": "allotments", "right": "flood_risk", "area": SQUARES}
    )
    _refused(r, 413, "too-large", "pieces")


def test_self_compare_within_100_km_is_422_fast(client):
    t0 = time.perf_counter()
    r = client.post("/analysis/compare", json=SELF_100_KM)
    assert time.perf_counter() - t0 < 10
    _refused(
        r, 422, "too-much-work", "street_trees", "2,000,000", "smaller distance", "bbox",
        "landexplorer compare street_trees street_trees --predicate within-distance",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[[NaN, 53.40], [-2.33, 53.40], [-2.33, 53.42], [NaN, 53.40]]]", "not a number"),
        ("[[[-2.36, 53.40], [Infinity, 53.40], [-2.33, 53.42], [-2.36, 53.40]]]", "not a number"),
        ("[[[53.40, -2.36], [53.40, 190.0], [53.42, 190.0], [53.40, -2.36]]]", "outside"),
        ('[[["a", 53.40], [-2.33, 53.40], [-2.33, 53.42], ["a", 53.40]]]', "not a number"),
        ("[[[-2.36, 53.40], [-2.33, 53.40], [-2.36, 53.40]]]", "at least four"),
    ],
)
def test_bad_coordinates_are_400_not_500(client, text, words):
    """A polygon with NaN coordinates was a 500 (JSON parsers accept NaN/Infinity)."""
    body = '{"area": {"type": "Polygon", "coordinates": ' + text + "}}"
    r = client.post(
        "/analysis/report", content=body.encode(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert words in r.json()["description"]


def test_zonal_and_report_work_is_sized(demo_settings):
    small = demo_settings.model_copy(
        update={"max_zonal_cells": 1_000, "max_report_features": 5_000}
    )
    borough = shapely.geometry.mapping(shapely.box(-2.48, 53.35, -2.25, 53.49))
    with TestClient(create_app(small)) as c:
        r = c.post("/analysis/zonal", json={"layer": "allotments", "raster": "elevation"})
        _refused(r, 422, "too-much-work", "raster cells", "bbox", "landexplorer zonal")
        r = c.post("/analysis/report", json={"area": borough, "layers": ["street_trees"]})
        _refused(r, 422, "too-much-work", "street_trees 15,638", "smaller area")
        # a small area is fine under the same limits
        r = c.post(
            "/analysis/report",
            json={"area": {"type": "Polygon", "coordinates": SQUARE}, "layers": ["flood_risk"]},
        )
        assert r.status_code == 200, r.text


def _server_process(url: str) -> psutil.Process:
    """The ``landexplorer serve`` this test session started on ``url``'s port."""
    port = url.rsplit(":", 1)[1]
    for child in psutil.Process().children(recursive=True):
        with_port = child.cmdline()
        if "serve" in with_port and port in with_port:
            return child
    raise AssertionError(f"no server process on port {port}")


def _peak_mb(proc: psutil.Process) -> float:
    """The process's peak resident memory so far (VmHWM), MB."""
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_live_server_memory_stays_small_under_the_attacks(live_url):
    proc = _server_process(live_url)
    with httpx.Client(base_url=live_url, timeout=60) as http:
        # warm up: an ordinary report and comparison (imports, caches, the store)
        ok = http.post(
            "/analysis/report", json={"area": {"type": "Polygon", "coordinates": SQUARE}}
        )
        assert ok.status_code == 200, ok.text
        ok = http.post(
            "/analysis/compare",
            json={"left": "street_trees", "right": "watercourses", "predicate": "within-distance",
                  "distance": 50},
        )  # fmt: skip
        assert ok.status_code == 200, ok.text
        before = _peak_mb(proc)
        for _ in range(3):
            t0 = time.perf_counter()
            r = http.post("/analysis/report", json={"area": SQUARES})
            _refused(r, 413, "too-large")
            r = http.post("/analysis/compare", json=SELF_100_KM)
            _refused(r, 422, "too-much-work")
            r = http.post(
                "/analysis/report",
                content=b'{"area": {"type": "Polygon", "coordinates": '
                b"[[[NaN, 53.4], [-2.3, 53.4], [-2.3, 53.5], [NaN, 53.4]]]}}",
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 400, r.text
            assert time.perf_counter() - t0 < 20
        after = _peak_mb(proc)
    # gigabytes before; now the attacks cost less than an ordinary request's worth
    assert after - before < 150, (before, after)
    assert proc.is_running()

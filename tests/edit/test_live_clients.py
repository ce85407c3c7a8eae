"""Real clients against a live ``landexplorer serve`` on each store: OWSLib's
``collection_item_create``, ``collection_item_update`` and ``collection_item_delete``
(with the ETag it read sent as If-Match), then GDAL's OAPIF driver (pyogrio's GDAL and,
where installed, Debian's ogrinfo) reading the edited layer; a refused edit from OWSLib
is an error it raises, with the server's words. (QGIS edits OGC API Features from 3.34;
Debian's QGIS here is 3.22, so it is not tried.)"""

from __future__ import annotations

import shutil
import subprocess
import warnings

import httpx
import pyogrio
import pytest

from tests.api.conftest import serve
from tests.edit.conftest import POINTS, build

POINT = {"type": "Point", "coordinates": [-2.31, 53.43]}


def _features(url: str, token_header: dict[str, str]):  # type: ignore[no-untyped-def]
    from owslib.ogcapi import REQUEST_HEADERS
    from owslib.ogcapi.features import Features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api = Features(url)
    # OWSLib shares one dict of headers between clients: this client gets its own
    api.headers = {**REQUEST_HEADERS, **token_header}
    return api


def test_owslib_edits_and_gdal_reads_them(store_backend, settings, real_data, tmp_path):
    tokens = build(settings, real_data, tmp_path)
    with serve(settings) as url:
        api = _features(url, tokens["ora"])
        new = {
            "type": "Feature", "geometry": POINT,
            "properties": {"name": "Stretford community orchard", "trees": 30},
        }  # fmt: skip
        assert api.collection_item_create(POINTS, new) is True
        location = api.response_headers["Location"]
        fid = location.rsplit("/", 1)[1]
        assert api.collection_item(POINTS, fid)["properties"]["trees"] == 30
        api.headers["If-Match"] = api.response_headers["ETag"]
        api.headers["Content-Type"] = "application/geo+json"
        changed = {**new, "properties": {"name": "Stretford orchard", "trees": 31}}
        assert api.collection_item_update(POINTS, fid, changed) is True
        # the same ETag again is stale now: OWSLib raises with the server's words
        with pytest.raises(RuntimeError, match="changed by someone else"):
            api.collection_item_update(POINTS, fid, changed)
        api.collection_item(POINTS, "1")
        api.headers["If-Match"] = api.response_headers["ETag"]
        assert api.collection_item_delete(POINTS, "1") is True
        # a viewer of the group is refused
        other = _features(url, tokens["vic"])
        with pytest.raises(RuntimeError, match="not edit it"):
            other.collection_item_create(POINTS, new)

        # GDAL reads the edited layer (pyogrio's GDAL, OAPIF driver)
        frame = pyogrio.read_dataframe(f"OAPIF:{url}", layer=POINTS)
        names = sorted(frame["name"])
        assert names == ["Canal path", "Stretford orchard"], names
        row = frame[frame["name"] == "Stretford orchard"].iloc[0]
        assert row["trees"] == 31
        assert (row.geometry.x, row.geometry.y) == (-2.31, 53.43)
        history = httpx.get(f"{url}/collections/{POINTS}/changes", headers=tokens["ora"]).json()
        ops = [c["operation"] for c in history["changes"]]
        assert ops == ["create", "replace", "delete"]
        if shutil.which("ogrinfo"):  # Debian's GDAL too
            out = subprocess.run(
                ["ogrinfo", "-ro", "-al", "-q", f"OAPIF:{url}", POINTS],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            assert "Stretford orchard" in out.stdout and "Sale orchard" not in out.stdout


def test_two_workers_race_on_one_feature(store_backend, settings, real_data, tmp_path):
    """``serve --workers 2``: six clients send a change of the same version of a feature
    at once, through whichever worker takes each: exactly one is made, the others get
    412 with its version; the history holds that one."""
    import threading

    from tests import live

    tokens = build(settings, real_data, tmp_path)
    with live.serve(settings.data_dir, database_url=settings.database_url, workers=2) as url:
        item = f"{url}/collections/{POINTS}/items/2"
        tag = httpx.get(item).headers["etag"]
        answers: dict[int, httpx.Response] = {}
        start = threading.Barrier(6)

        def send(n: int) -> None:
            with httpx.Client(timeout=60) as client:
                start.wait()
                answers[n] = client.patch(
                    item, json={"properties": {"trees": 100 + n}},
                    headers={**tokens["ora"], "If-Match": tag},
                )  # fmt: skip

        threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in answers.values())
        assert codes == [200] + [412] * 5, [(r.status_code, r.text[:120]) for r in answers.values()]
        won = next(n for n, r in answers.items() if r.status_code == 200)
        for r in answers.values():
            if r.status_code == 412:
                assert r.json()["feature"]["properties"]["trees"] == 100 + won
        assert httpx.get(item).json()["properties"]["trees"] == 100 + won
        changes = httpx.get(f"{url}/collections/{POINTS}/changes").json()["changes"]
        assert [c["after"]["properties"]["trees"] for c in changes] == [100 + won]

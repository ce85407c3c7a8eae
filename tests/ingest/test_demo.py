"""The demo: every manifest entry verified by SHA-256 and loaded with licence and attribution."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from landexplorer.catalog import Store, open_store
from landexplorer.errors import ChecksumMismatch, DataUnavailable
from landexplorer.layers.demo import DEFAULT_MANIFEST, load_demo, load_manifest
from landexplorer.settings import Settings


def test_demo_catalogue(demo_store: Store) -> None:
    manifest = load_manifest()
    entries = {e.id: e for e in demo_store.list_layers()}
    assert set(entries) == {layer.id for layer in manifest}
    for layer in manifest:
        entry = entries[layer.id]
        assert entry.licence == layer.licence and entry.attribution == layer.attribution
        assert entry.kind == layer.kind and entry.is_public
    assert entries["flood_risk"].feature_count == 1494
    assert entries["street_trees"].feature_count == 15638
    assert entries["allotments"].feature_count == 35
    assert entries["elevation"].data_type == "raster"
    assert (entries["elevation"].raster["width"], entries["elevation"].raster["height"]) == (
        600,
        400,
    )


def test_demo_is_idempotent(demo_settings: Settings, tmp_path: Path) -> None:
    copy = Settings(data_dir=tmp_path / "copy", demo_mirror=demo_settings.demo_mirror)
    shutil.copytree(demo_settings.data_dir, copy.data_dir)
    store = open_store(copy)
    before = [(e.id, e.version) for e in store.list_layers()]
    load_demo(store, copy)
    assert [(e.id, e.version) for e in store.list_layers()] == before


def test_changed_mirror_file_is_refused(tmp_path: Path, real_data: Path) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(real_data / "allotments", mirror / "allotments")
    target = mirror / "allotments" / "trafford_allotments.geojson"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes() + b"\n")  # one byte more: another file
    manifest = tmp_path / "demo.json"
    entry = next(
        m
        for m in json.loads((Path(__file__).parents[2] / "data" / "demo.json").read_text())[
            "layers"
        ]
        if m["id"] == "allotments"
    )
    entry["files"][0]["url"] = None
    manifest.write_text(json.dumps({"layers": [entry]}))
    settings = Settings(data_dir=tmp_path / "data", demo_mirror=mirror, demo_manifest=manifest)
    store = open_store(settings)
    with pytest.raises(ChecksumMismatch, match="SHA-256 differs"):
        load_demo(store, settings)
    assert store.list_layers() == []


def test_missing_file_without_address(tmp_path: Path) -> None:
    manifest = tmp_path / "demo.json"
    manifest.write_text(
        json.dumps(
            {
                "layers": [
                    {
                        "id": "x",
                        "title": "X",
                        "kind": "open",
                        "licence": "OGL-UK-3.0",
                        "attribution": "a",
                        "files": [{"path": "nowhere/x.geojson", "sha256": "0" * 64, "url": None}],
                    }
                ]
            }
        )
    )
    settings = Settings(
        data_dir=tmp_path / "data", demo_mirror=tmp_path / "empty", demo_manifest=manifest
    )
    with pytest.raises(DataUnavailable, match="LANDEXPLORER_DEMO_MIRROR"):
        load_demo(open_store(settings), settings)


def test_demo_says_where_each_layer_came_from(tmp_path: Path, real_data: Path) -> None:
    """From the mirror on a first load, from the download cache never (the mirror is used in
    place), and 'already loaded' the second time."""
    from landexplorer.layers.demo import DemoLayer

    manifest = tmp_path / "demo.json"
    full = json.loads(DEFAULT_MANIFEST.read_text())
    full["layers"] = [layer for layer in full["layers"] if layer["id"] == "allotments"]
    manifest.write_text(json.dumps(full))
    settings = Settings(data_dir=tmp_path / "data", demo_mirror=real_data, demo_manifest=manifest)
    store = open_store(settings)
    told: list[tuple[str, bool, str]] = []

    def said(layer: DemoLayer, entry: object, origin: str) -> None:
        told.append((layer.id, entry is not None, origin))

    load_demo(store, settings, on_layer=said)
    load_demo(store, settings, on_layer=said)
    assert told == [
        ("allotments", True, f"the local mirror ({real_data})"),
        ("allotments", False, "already in the catalogue"),
    ]

"""Bad input gets a clear, plain-words error, and the catalogue is left exactly as it was."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from landexplorer.catalog import Store
from landexplorer.errors import (
    CRSError,
    EmptyInput,
    InputError,
    LayerExists,
    UnsafeArchive,
    UnsupportedFormat,
)
from landexplorer.layers.ingest import IngestOptions, ingest


@pytest.fixture
def seeded(store: Store, real_data: Path) -> Store:
    """A catalogue that already holds one layer, which bad input must not disturb."""
    ingest(
        store, real_data / "allotments" / "trafford_allotments.geojson", IngestOptions(id="sites")
    )
    return store


def _snapshot(store: Store) -> list[tuple[str, int, str, int]]:
    return [(e.id, e.version, e.storage, e.feature_count) for e in store.list_layers()]


def _refused(
    store: Store, path: Path, error: type[Exception], match: str, **options: object
) -> str:
    before = _snapshot(store)
    with pytest.raises(error, match=match) as info:
        ingest(store, path, IngestOptions(**options))  # type: ignore[arg-type]
    assert _snapshot(store) == before
    assert store.read_frame("sites").shape[0] == 35
    message = str(info.value)
    assert "Traceback" not in message and "/vsizip" not in message
    return message


def test_empty_file(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "orchards.geojson"
    path.write_bytes(b"")
    _refused(seeded, path, EmptyInput, "empty")


def test_geojson_without_features(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "none.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    _refused(seeded, path, InputError, "no features|no layers")


def test_not_geodata(seeded: Store, tmp_path: Path) -> None:
    picture = tmp_path / "photo.geojson"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    _refused(seeded, picture, UnsupportedFormat, "could not be read as map data")
    letter = tmp_path / "letter.docx"
    letter.write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 200)
    _refused(seeded, letter, UnsupportedFormat, "not map data")
    notes = tmp_path / "notes.csv"
    notes.write_text("just some words\nwithout any separators\n")
    _refused(seeded, notes, UnsupportedFormat, "does not look like a CSV")


def test_corrupt_zip(seeded: Store, tmp_path: Path, real_data: Path) -> None:
    good = (real_data / "flood_risk_rofrs" / "trafford_rofrs_2018_bng_shapefile.zip").read_bytes()
    broken = tmp_path / "flood.zip"
    broken.write_bytes(good[: len(good) // 2])
    _refused(seeded, broken, InputError, "not a readable zip")
    scrambled = tmp_path / "scrambled.zip"
    data = bytearray(good)
    data[200:260] = b"\x00" * 60  # damage a member's compressed bytes
    scrambled.write_bytes(bytes(data))
    _refused(seeded, scrambled, InputError, "damaged|not a readable zip|could not be read")


def test_zip_with_parent_paths(seeded: Store, tmp_path: Path, real_data: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(
            real_data / "allotments" / "trafford_allotments.geojson", "../../outside.geojson"
        )
    message = _refused(seeded, path, UnsafeArchive, "unsafe path")
    assert "../../outside.geojson" in message


def test_empty_zip_and_zip_without_data(seeded: Store, tmp_path: Path) -> None:
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w"):
        pass
    _refused(seeded, empty, EmptyInput, "empty zip")
    docs = tmp_path / "docs.zip"
    with zipfile.ZipFile(docs, "w") as archive:
        archive.writestr("readme.txt", "hello")
    _refused(seeded, docs, UnsupportedFormat, "holds no map data")


def test_csv_without_coordinates(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "orchards.csv"
    path.write_text("name,variety\nBig Orchard,Bramley\n")
    message = _refused(seeded, path, InputError, "no coordinate columns")
    assert "--x" in message and "name, variety" in message


def test_csv_all_rows_without_coordinates(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "orchards.csv"
    path.write_text("name,lon,lat\nA,,\nB,,\n")
    _refused(seeded, path, EmptyInput, "None of the 2 rows")


def test_unknown_crs(seeded: Store, real_data: Path) -> None:
    path = real_data / "listed_buildings" / "trafford_listed_buildings.csv"
    _refused(seeded, path, CRSError, "not a coordinate system", crs="EPSG:999999")


def test_eastings_read_as_longitudes(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "trees.csv"
    path.write_text("name,lon,lat\nOak,376909.9,389829.7\nAsh,380230.2,385291.2\n")
    message = _refused(seeded, path, CRSError, "cannot be longitudes and latitudes")
    assert "EPSG:27700" in message


def test_degrees_declared_as_bng(seeded: Store, real_data: Path) -> None:
    path = real_data / "allotments" / "trafford_allotments.csv"
    _refused(seeded, path, CRSError, "look like longitudes and latitudes", crs="EPSG:27700")


def test_no_crs_and_not_lon_lat(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "places.csv"
    path.write_text("name,x,y\nA,380230.2,385291.2\nB,376909.9,389829.7\n")
    _refused(seeded, path, CRSError, "does not say which coordinate system")


def test_coordinates_outside_the_crs_area(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "far.csv"
    path.write_text("name,easting,northing\nA,9000000,9000000\n")
    _refused(seeded, path, CRSError, "outside the area", crs="EPSG:27700")


def test_bad_coordinate_value(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "places.csv"
    path.write_text("name,lon,lat\nA,-2.3,53.4\nB,west,53.4\n")
    entry = ingest(seeded, path, IngestOptions(id="two"))[0]
    # one good row is kept; the bad one is left out and said so
    assert entry.feature_count == 1
    assert entry.report.dropped_no_coordinates == 1
    assert any("'west'" in note for note in entry.report.notes)


def test_existing_layer_needs_replace(seeded: Store, real_data: Path) -> None:
    path = real_data / "allotments" / "trafford_allotments.csv"
    _refused(seeded, path, LayerExists, "--replace", id="sites")


def test_bad_layer_id_and_kind(seeded: Store, real_data: Path) -> None:
    path = real_data / "allotments" / "trafford_allotments.csv"
    _refused(seeded, path, InputError, "cannot be used as a layer id", id="Robert'); DROP TABLE")
    _refused(seeded, path, InputError, "kind must be one of", kind="secret")

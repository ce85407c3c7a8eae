"""Nothing an owner set is lost (issue 9), on both stores: a replace keeps a layer's details
unless new ones are given and says so; raster <-> vector only when asked; every feature of
a mixed-geometry file is kept; licences are SPDX expressions; reserved ids are refused;
awkward files (Latin-1, a column name used twice, a shapefile without its .dbf) are loaded
or refused in plain words, and a refusal leaves the catalogue as it was."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from landexplorer.catalog import Store
from landexplorer.catalog.model import normalise_licence
from landexplorer.cli import main
from landexplorer.errors import InputError, LayerExists
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings

SITES = ("allotments", "trafford_allotments.geojson")
DETAILS = dict(
    title="Trafford allotments",
    description="Council allotment sites",
    kind="open",
    licence="OGL-UK-3.0",
    attribution="Trafford Council",
    source="https://www.trafford.gov.uk/",
    owner="parks team",
    visibility="public",
)


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The start of a command line for ``main`` over the test's catalogue (either store)."""
    if settings.database_url:
        monkeypatch.setenv("LANDEXPLORER_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("LANDEXPLORER_DATABASE_URL", raising=False)
    return ["--data-dir", str(settings.data_dir)]


def _snapshot(store: Store) -> list[dict[str, object]]:
    return [e.to_dict() for e in store.list_layers()]


def _feature(geometry: dict[str, object], **properties: object) -> dict[str, object]:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def _square(x: float, y: float, d: float = 0.001) -> dict[str, object]:
    ring = [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def _point(x: float, y: float) -> dict[str, object]:
    return {"type": "Point", "coordinates": [x, y]}


def _geojson(path: Path, *features: dict[str, object]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(features)}))
    return path


def _tiny_raster(path: Path) -> Path:
    """A 20 x 20 grid of 50 m cells in British National Grid, inside Trafford."""
    data = np.arange(400, dtype=np.float32).reshape(20, 20)
    with rasterio.open(
        path, "w", driver="GTiff", width=20, height=20, count=1, dtype="float32",
        crs="EPSG:27700", transform=from_origin(378000, 395000, 50, 50), nodata=-9999,
    ) as out:  # fmt: skip
        out.write(data, 1)
    return path


# ----- 1. a replace keeps what the owner set ---------------------------------------------------
def test_replace_keeps_every_detail_and_says_so(store: Store, real_data: Path) -> None:
    src = real_data.joinpath(*SITES)
    (first,) = ingest(store, src, IngestOptions(id="sites", **DETAILS))  # type: ignore[arg-type]
    assert first.is_public
    # the README's own example: a new version with nothing else said
    (second,) = ingest(store, src, IngestOptions(id="sites", replace=True))
    assert second.version == 2
    stored = store.get("sites")
    for name, value in DETAILS.items():
        assert getattr(stored, name) == value, name
    assert stored.is_public  # still on the public map
    assert stored.report.kept_from_version == 1
    assert set(stored.report.kept) == set(DETAILS)
    said = " ".join(stored.report.summary())
    assert "Kept from version 1" in said and "'OGL-UK-3.0'" in said and "'open'" in said
    # a value given is used; the rest still kept
    ingest(store, src, IngestOptions(id="sites", replace=True, licence="cc-by-4.0", title="Plots"))
    stored = store.get("sites")
    assert (stored.licence, stored.title, stored.attribution) == (
        "CC-BY-4.0",
        "Plots",
        "Trafford Council",
    )
    assert (stored.kind, stored.visibility, stored.owner) == ("open", "public", "parks team")
    assert "licence" not in stored.report.kept and "title" not in stored.report.kept
    assert stored.version == 3


def test_replace_keeps_details_changed_after_the_first_load(store: Store, real_data: Path) -> None:
    src = real_data.joinpath(*SITES)
    ingest(store, src, IngestOptions(id="sites"))  # no licence: private
    assert store.get("sites").visibility == "private"
    store.update_metadata("sites", licence="ODbL-1.0", visibility="group", owner="ann")
    ingest(store, src, IngestOptions(id="sites", replace=True))
    stored = store.get("sites")
    assert (stored.licence, stored.visibility, stored.owner) == ("ODbL-1.0", "group", "ann")


def test_replace_of_a_missing_layer_gets_the_defaults(store: Store, real_data: Path) -> None:
    (entry,) = ingest(store, real_data.joinpath(*SITES), IngestOptions(id="new", replace=True))
    assert (entry.version, entry.kind, entry.visibility, entry.licence) == (
        1,
        "community",
        "private",
        "",
    )
    assert not entry.report.kept


def test_cli_replace_says_what_it_kept(
    capsys: pytest.CaptureFixture[str], cli: list[str], store: Store, real_data: Path
) -> None:
    src = str(real_data.joinpath(*SITES))
    base = cli
    assert main([*base, "ingest", src, "--id", "allotments", "--kind", "open",
                 "--licence", "OGL-UK-3.0", "--attribution", "Trafford Council",
                 "--title", "Allotments"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main([*base, "ingest", src, "--id", "allotments", "--replace"]) == 0
    out = capsys.readouterr().out
    assert "Kept from version 1" in out and "licence" in out and "attribution" in out
    assert "no licence yet" not in out
    entry = store.get("allotments")
    assert (entry.title, entry.licence, entry.kind, entry.visibility) == (
        "Allotments", "OGL-UK-3.0", "open", "public",
    )  # fmt: skip


# ----- 2. raster <-> vector only when asked ---------------------------------------------------
def test_replace_refuses_to_change_raster_into_vector_and_back(
    store: Store, real_data: Path, tmp_path: Path
) -> None:
    grid = _tiny_raster(tmp_path / "heights.tif")
    sites = real_data.joinpath(*SITES)
    ingest(store, grid, IngestOptions(id="heights", licence="OGL-UK-3.0"))
    ingest(store, sites, IngestOptions(id="sites", licence="OGL-UK-3.0"))
    before = _snapshot(store)
    with pytest.raises(InputError, match=r"raster layer.*--allow-type-change"):
        ingest(store, sites, IngestOptions(id="heights", replace=True))
    with pytest.raises(InputError, match=r"vector layer.*--allow-type-change"):
        ingest(store, grid, IngestOptions(id="sites", replace=True))
    assert _snapshot(store) == before
    # asked for explicitly, it is done, and the details are kept as for any replace
    (entry,) = ingest(
        store, sites, IngestOptions(id="heights", replace=True, allow_type_change=True)
    )
    assert (entry.data_type, entry.version, entry.licence) == ("vector", 2, "OGL-UK-3.0")
    assert store.get("heights").feature_count == 35
    (entry,) = ingest(store, grid, IngestOptions(id="sites", replace=True, allow_type_change=True))
    assert (entry.data_type, entry.version) == ("raster", 2)
    assert store.raster_path(store.get("sites")).exists()


# ----- 3. mixed geometries keep every feature -------------------------------------------------
def test_a_polygon_and_a_point_both_kept(store: Store, tmp_path: Path) -> None:
    path = _geojson(
        tmp_path / "orchards.geojson",
        _feature(_square(-2.30, 53.40), name="community orchard", trees=12),
        _feature(_point(-2.31, 53.42), name="old pear tree", trees=1),
    )
    entries = ingest(
        store, path, IngestOptions(id="orchards", licence="CC-BY-4.0", title="Orchards")
    )
    assert [(e.id, e.geometry_type, e.feature_count) for e in entries] == [
        ("orchards", "MultiPolygon", 1),  # a tie: polygons keep the id
        ("orchards_points", "Point", 1),
    ]
    main_layer, points = entries
    assert main_layer.report.also_stored == {"orchards_points": 1}
    assert main_layer.report.dropped_empty == 0
    assert any("orchards_points" in line for line in main_layer.report.summary())
    assert (
        points.licence == "CC-BY-4.0" and points.title == "Orchards (points)" and points.is_public
    )
    polygons = store.read_frame("orchards")
    assert list(polygons["name"]) == ["community orchard"] and list(polygons["trees"]) == [12]
    assert shapely.get_type_id(polygons.geometry.values[0]) == 6
    trees = store.read_frame("orchards_points")
    assert list(trees["name"]) == ["old pear tree"]
    assert (trees.geometry.x.iloc[0], trees.geometry.y.iloc[0]) == (-2.31, 53.42)


def test_the_family_with_most_features_keeps_the_id(store: Store, tmp_path: Path) -> None:
    line = {"type": "LineString", "coordinates": [[-2.30, 53.40], [-2.29, 53.41]]}
    path = _geojson(
        tmp_path / "walk.geojson",
        _feature(_point(-2.31, 53.42), n=1),
        _feature(_square(-2.30, 53.40), n=2),
        _feature(_point(-2.32, 53.43), n=3),
        _feature(line, n=4),
        _feature({"type": "MultiPoint", "coordinates": [[-2.33, 53.44], [-2.34, 53.45]]}, n=5),
    )
    entries = ingest(store, path, IngestOptions(id="walk"))
    got = {e.id: (e.geometry_type, e.feature_count) for e in entries}
    assert got == {
        "walk": ("MultiPoint", 3),
        "walk_polygons": ("MultiPolygon", 1),
        "walk_lines": ("MultiLineString", 1),
    }
    assert sorted(store.read_frame("walk")["n"]) == [1, 3, 5]
    assert sum(e.feature_count for e in entries) == 5


def test_polygons_with_multipolygons_and_collections_stay_one_layer(
    store: Store, tmp_path: Path
) -> None:
    stray = {"type": "LineString", "coordinates": [[-2.2, 53.4], [-2.21, 53.41]]}
    collection = {"type": "GeometryCollection", "geometries": [_square(-2.25, 53.45), stray]}
    multi = {"type": "MultiPolygon", "coordinates": [_square(-2.27, 53.47)["coordinates"]]}
    path = _geojson(
        tmp_path / "areas.geojson",
        _feature(_square(-2.30, 53.40), n=1),
        _feature(multi, n=2),
        _feature(collection, n=3),
    )
    entries = ingest(store, path, IngestOptions(id="areas"))
    assert [(e.id, e.geometry_type, e.feature_count) for e in entries] == [
        ("areas", "MultiPolygon", 3)
    ]
    assert entries[0].report.dropped_parts == 1  # the stray line inside the collection
    assert not entries[0].report.also_stored


def test_mixed_load_is_all_or_nothing(store: Store, tmp_path: Path, real_data: Path) -> None:
    ingest(store, real_data.joinpath(*SITES), IngestOptions(id="trees_points"))
    before = _snapshot(store)
    path = _geojson(
        tmp_path / "trees.geojson",
        _feature(_square(-2.30, 53.40)),
        _feature(_square(-2.28, 53.40)),
        _feature(_point(-2.31, 53.42)),
    )
    # the polygons' layer is written first; the points' layer name is taken: nothing stays
    with pytest.raises(LayerExists, match=r"trees_points.*--replace"):
        ingest(store, path, IngestOptions(id="trees"))
    assert _snapshot(store) == before
    if store.backend == "gpkg":
        with sqlite3.connect(store.path) as conn:  # type: ignore[attr-defined]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            staged = conn.execute("SELECT count(*) FROM landexplorer_staging").fetchone()[0]
        assert not any(t.startswith("trees_v") for t in tables) and staged == 0
    # with --replace both layers are written, in one load
    entries = ingest(store, path, IngestOptions(id="trees", replace=True))
    assert [(e.id, e.version, e.feature_count) for e in entries] == [
        ("trees", 1, 2),
        ("trees_points", 2, 1),
    ]


# ----- 4. licences are SPDX expressions --------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("OGL-UK-3.0", "OGL-UK-3.0"),
        ("cc-by-4.0", "CC-BY-4.0"),
        ("ODbL-1.0 AND CC-BY-4.0", "ODbL-1.0 AND CC-BY-4.0"),
        ("ogl-uk-3.0 and odbl-1.0", "OGL-UK-3.0 AND ODbL-1.0"),
        ("  CC0-1.0 ", "CC0-1.0"),
        ("licenseref-our-own-terms", "LicenseRef-our-own-terms"),
    ],
)
def test_licences_are_stored_in_spdx_spelling(given: str, stored: str) -> None:
    assert normalise_licence(given) == stored


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (" ", "blank"),
        ("\t\n", "blank"),
        ("Open Government Licence", "Did you mean OGL-UK-3.0"),
        ("CC BY 4.0", "Did you mean CC-BY-4.0"),
        ("made-up-licence", "not a licence id"),
        ("CC-BY-4.0 OR", "not a licence expression"),
        ("MIT, Apache-2.0", "not a licence expression"),
        ("( ) MIT", "not a licence expression"),  # slips of the SPDX parser itself
        ("( OR :", "not a licence expression"),
    ],
)
def test_bad_licences_are_refused_with_examples(given: str, said: str) -> None:
    with pytest.raises(InputError) as info:
        normalise_licence(given)
    message = info.value.public
    assert said in message
    assert "OGL-UK-3.0" in message and "CC-BY-4.0" in message and "ODbL-1.0" in message


def test_ingest_checks_the_licence(store: Store, real_data: Path) -> None:
    src = real_data.joinpath(*SITES)
    ingest(store, src, IngestOptions(id="sites", licence="OGL-UK-3.0"))
    before = _snapshot(store)
    for bad in (" ", "Open Government Licence"):
        with pytest.raises(InputError):
            ingest(store, src, IngestOptions(id="other", licence=bad))
        with pytest.raises(InputError):
            ingest(store, src, IngestOptions(id="sites", replace=True, licence=bad))
    assert _snapshot(store) == before
    # an empty licence is no licence: the layer stays private
    (entry,) = ingest(store, src, IngestOptions(id="unlicensed", licence=""))
    assert entry.licence == "" and entry.visibility == "private" and not entry.is_public
    (entry,) = ingest(store, src, IngestOptions(id="spelt", licence="cc-by-sa-4.0"))
    assert store.get("spelt").licence == "CC-BY-SA-4.0" and entry.is_public


def test_public_without_a_licence_is_refused(store: Store, real_data: Path) -> None:
    src = real_data.joinpath(*SITES)
    with pytest.raises(InputError, match="public only with a licence"):
        ingest(store, src, IngestOptions(id="sites", visibility="public"))
    assert store.list_layers() == []
    ingest(store, src, IngestOptions(id="sites"))
    with pytest.raises(InputError, match="public only with a licence"):
        ingest(store, src, IngestOptions(id="sites", replace=True, visibility="public"))
    assert store.get("sites").version == 1


def test_old_entries_with_free_text_licences_still_load(store: Store, real_data: Path) -> None:
    src = real_data.joinpath(*SITES)
    ingest(store, src, IngestOptions(id="sites", licence="OGL-UK-3.0"))
    # written before licences were checked (the store itself does not check)
    store.update_metadata("sites", licence="Open Government Licence v3")
    assert store.list_layers()[0].licence == "Open Government Licence v3"
    ingest(store, src, IngestOptions(id="sites", replace=True))  # kept as it was
    assert store.get("sites").licence == "Open Government Licence v3"


def test_cli_layers_set_checks_the_licence(
    capsys: pytest.CaptureFixture[str], cli: list[str], store: Store, real_data: Path
) -> None:
    base = cli
    ingest(store, real_data.joinpath(*SITES), IngestOptions(id="sites"))
    assert main([*base, "layers", "set", "sites", "--licence", " "]) != 0
    assert "blank" in capsys.readouterr().err
    assert main([*base, "layers", "set", "sites", "--licence", "CC BY 4.0"]) != 0
    assert "Did you mean CC-BY-4.0" in " ".join(capsys.readouterr().err.split())
    assert store.get("sites").licence == ""
    assert main([*base, "layers", "set", "sites", "--licence", "odbl-1.0"]) == 0
    assert store.get("sites").licence == "ODbL-1.0"


# ----- 5. reserved ids -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer_id",
    ["landexplorer_layers", "landexplorer_staging", "gpkg_contents", "rtree_sites_v1_geom",
     "sqlite_sequence", "gpkg"],
)  # fmt: skip
def test_reserved_ids_are_refused(store: Store, real_data: Path, layer_id: str) -> None:
    before = _snapshot(store)
    with pytest.raises(InputError, match="kept for the catalogue's own tables"):
        ingest(store, real_data.joinpath(*SITES), IngestOptions(id=layer_id))
    assert _snapshot(store) == before


# ----- 6. awkward files in plain words -------------------------------------------------------
def test_latin1_csv_is_read_as_windows_1252(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "cafes.csv"
    path.write_bytes(
        "name,lon,lat\nCafé Müller,-2.30,53.40\nSmörgås,-2.31,53.41\n".encode("cp1252")
    )
    (entry,) = ingest(store, path, IngestOptions(id="cafes"))
    assert list(store.read_frame("cafes")["name"]) == ["Café Müller", "Smörgås"]
    assert any("Windows-1252" in line for line in entry.report.summary())


def test_latin1_found_past_the_first_megabyte(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    rows = b"".join(b"site %d,-2.30,53.40\n" % i for i in range(60_000))
    assert len(rows) > 1024 * 1024
    path.write_bytes(b"name,lon,lat\n" + rows + "Café,-2.31,53.41\n".encode("latin-1"))
    (entry,) = ingest(store, path, IngestOptions(id="long", batch_size=4096))
    assert entry.feature_count == 60_001
    names = store.read_frame("long")["name"]
    assert names.iloc[-1] == "Café" and names.iloc[0] == "site 0"
    assert any("not UTF-8" in line for line in entry.report.summary())


def test_a_column_name_used_twice(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text("name,lon,lat,lon\nplot a,-2.30,53.40,7\nplot b,-2.31,53.41,8\n")
    (entry,) = ingest(store, path, IngestOptions(id="twice"))
    frame = store.read_frame("twice")
    assert list(frame["lon_2"]) == [7, 8]
    assert list(frame.geometry.x) == [-2.30, -2.31]  # the first 'lon' gives the coordinates
    assert any("'lon' appears more than once" in line for line in entry.report.summary())


def test_shapefile_zip_without_its_dbf(store: Store, tmp_path: Path, real_data: Path) -> None:
    ingest(store, real_data.joinpath(*SITES), IngestOptions(id="sites"))
    before = _snapshot(store)
    source = real_data / "flood_risk_rofrs" / "trafford_rofrs_2018_bng_shapefile.zip"
    with zipfile.ZipFile(source) as zin:
        members = {n: zin.read(n) for n in zin.namelist()}
    for missing in (".dbf", ".shx"):
        broken = tmp_path / f"flood_no{missing[1:]}.zip"
        with zipfile.ZipFile(broken, "w") as zout:
            for name, data in members.items():
                if not name.lower().endswith(missing):
                    zout.writestr(name, data)
        with pytest.raises(InputError) as info:
            ingest(store, broken, IngestOptions(id="flood"))
        message = info.value.public
        assert missing in message and ".shp, .shx and .dbf" in message
        assert "Arrow" not in message
        assert _snapshot(store) == before

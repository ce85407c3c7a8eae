"""Comparisons and overlay amounts pushed into PostGIS SQL give the answers of the Python
path on the GeoPackage store (counts exactly, amounts to 1e-6 relative), on the real demo
catalogue, and the SOURCES.md figures. The PostGIS store counts every push-down it answers
(``store.pushdowns``), so each test also checks that the SQL path was really taken."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from landexplorer.analysis import pgsql
from landexplorer.analysis.compare import compare
from landexplorer.analysis.overlay import overlay_areas
from landexplorer.catalog import Query
from landexplorer.catalog.gpkg import GeoPackageStore
from landexplorer.catalog.migrate import migrate
from landexplorer.catalog.postgis import PostGISStore
from landexplorer.errors import InputError
from landexplorer.settings import Settings
from tests.pg import PgCluster

Pair = tuple[GeoPackageStore, PostGISStore]
BANDS = ["High", "Medium", "Low", "Very Low"]


@pytest.fixture(scope="module")
def demo_pair(demo_gpkg_settings: Settings, pg_cluster: PgCluster) -> Iterator[Pair]:
    """The demo catalogue on the GeoPackage store and (copied by migrate) on PostGIS."""
    gpkg = GeoPackageStore(demo_gpkg_settings.catalog_path, demo_gpkg_settings.raster_dir)
    pg = PostGISStore(pg_cluster.new_database("pushdown"), demo_gpkg_settings.raster_dir)
    assert migrate(gpkg, pg).ok
    yield gpkg, pg
    gpkg.close()
    pg.close()


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, ignore_index=True)


def _same_overlay(a, b, amount: str) -> None:  # type: ignore[no-untyped-def]
    """Two Overlay results agree: tables of the same shape, counts exactly, amounts and
    shares to 1e-6 relative, same CRS, sources and units."""
    assert (a.measure, a.unit, a.crs, a.by, a.left_by) == (
        b.measure,
        b.unit,
        b.crs,
        b.by,
        b.left_by,
    )
    assert [s.to_dict() for s in a.sources] == [s.to_dict() for s in b.sources]
    assert a.left_total == pytest.approx(b.left_total, rel=1e-6)
    for name, keys in (("totals", ["class"]), ("per_feature", ["left_fid", "class"])):
        fa, fb = getattr(a, name), getattr(b, name)
        keys = ([a.left_by] if a.left_by and name == "totals" else []) + keys
        assert fa.columns.tolist() == fb.columns.tolist(), name
        fa, fb = _sorted(fa, keys), _sorted(fb, keys)
        assert len(fa) == len(fb), name
        for col in fa.columns:
            if col in (amount, "share", "area_ha", "length_km"):
                # per feature, slivers of a few mm2 differ by float noise (~1e-6 m2)
                atol = 0 if name == "totals" else 1e-5
                assert np.allclose(fa[col], fb[col], rtol=1e-6, atol=atol), (name, col)
            else:
                assert fa[col].tolist() == fb[col].tolist(), (name, col)


OVERLAYS = [
    # (left, right, keyword arguments, amount column)
    ("allotments", "flood_risk", {"by": "prob_4band"}, "area_m2"),
    ("allotments", "flood_risk", {"by": "prob_4band", "dissolve": False}, "area_m2"),
    ("flood_risk", "land_grade", {"by": "grade", "left_by": "prob_4band"}, "area_m2"),
    ("watercourses", "flood_risk", {"by": "prob_4band"}, "length_m"),
    ("street_trees", "flood_risk", {"by": "prob_4band"}, "count"),
    ("street_trees", "flood_risk", {}, "count"),
    ("allotments", "land_grade", {"by": "grade", "bbox": (-2.40, 53.40, -2.30, 53.46)}, "area_m2"),
]


@pytest.mark.parametrize(("left", "right", "kwargs", "amount"), OVERLAYS)
def test_overlay_in_sql_agrees_with_python(
    demo_pair: Pair, left: str, right: str, kwargs: dict, amount: str
) -> None:
    gpkg, pg = demo_pair
    assert gpkg.sql() is None  # the Python path there
    before = pg.pushdowns["overlay_areas"]
    pushed = overlay_areas(left, right, store=pg, **kwargs)
    assert pg.pushdowns["overlay_areas"] == before + 1  # answered in SQL
    python = overlay_areas(left, right, store=gpkg, **kwargs)
    _same_overlay(pushed, python, amount)
    assert pushed.crs == "EPSG:27700" and pushed.pieces is None
    assert len(pushed.totals) > 0


def test_overlay_in_sql_matches_sources_md(demo_pair: Pair) -> None:
    _, pg = demo_pair
    before = pg.pushdowns["overlay_areas"]
    # allotments x flood: 4/5/4/2 sites by band; SOURCES.md sums every piece (13,084 m2 High)
    summed = overlay_areas("allotments", "flood_risk", store=pg, by="prob_4band", dissolve=False)
    totals = summed.totals.set_index("class")
    assert dict(totals["features"]) == {"High": 4, "Medium": 5, "Low": 4, "Very Low": 2}
    assert [round(totals.loc[b, "area_m2"]) for b in BANDS] == [13_084, 4_495, 28_344, 4_634]
    assert round(summed.left_total) == 381_805
    # dissolved: High polygons overlapping each other over allotments count once
    dissolved = overlay_areas("allotments", "flood_risk", store=pg, by="prob_4band")
    assert dissolved.totals.set_index("class").loc["High", "area_m2"] < 13_084
    # flood x land grade: High on Grade 2 is 0.317 km2
    grade = overlay_areas("flood_risk", "land_grade", store=pg, by="grade", left_by="prob_4band")
    t = grade.totals.set_index(["prob_4band", "class"])["area_m2"]
    assert round(t[("High", "Grade 2")] / 1e6, 3) == 0.317
    assert round(t[("Medium", "Grade 3")] / 1e6, 3) == 1.284
    # trees in flood: 532, High 27, Medium 61, Low 438, Very Low 11
    trees = overlay_areas("street_trees", "flood_risk", store=pg, by="prob_4band").totals
    assert dict(zip(trees["class"], trees["count"], strict=True)) == {
        "High": 27,
        "Low": 438,
        "Medium": 61,
        "Very Low": 11,
    }
    anywhere = overlay_areas("street_trees", "flood_risk", store=pg).totals
    assert anywhere["count"].tolist() == [532] and anywhere["class"].tolist() == ["(all)"]
    assert pg.pushdowns["overlay_areas"] == before + 5


def test_overlay_falls_back_where_sql_cannot_answer(demo_pair: Pair) -> None:
    """Pieces for maps, frames and bad input go the Python way, with its messages."""
    _, pg = demo_pair
    before = pg.pushdowns["overlay_areas"]
    with_pieces = overlay_areas(
        "allotments", "flood_risk", store=pg, by="prob_4band", keep_pieces=True
    )
    assert with_pieces.pieces is not None and len(with_pieces.pieces) > 0
    frame = pg.read_frame("allotments")
    overlay_areas(frame, "flood_risk", store=pg, by="prob_4band")
    with pytest.raises(InputError, match="no column called 'nope'"):
        overlay_areas("allotments", "flood_risk", store=pg, by="nope")
    with pytest.raises(InputError, match="polygon layer on the right"):
        overlay_areas("allotments", "street_trees", store=pg)
    assert pg.pushdowns["overlay_areas"] == before


COMPARISONS = [
    ("allotments", "flood_risk", {"predicate": "intersects", "by": "prob_4band"}),
    ("street_trees", "flood_risk", {"predicate": "within", "by": "prob_4band"}),
    ("land_grade", "allotments", {"predicate": "contains", "by": "name"}),
    ("watercourses", "flood_risk", {"predicate": "intersects", "by": "prob_4band"}),
    ("allotments", "watercourses", {"predicate": "within-distance", "distance": 250.0}),
    (
        "allotments",
        "street_trees",
        {"predicate": "within-distance", "distance": 30.0, "bbox": (-2.36, 53.40, -2.30, 53.44)},
    ),
    (
        "allotments",
        "flood_risk",
        {"predicate": "intersects", "left_columns": ["name"], "right_columns": []},
    ),
]


@pytest.mark.parametrize(("left", "right", "kwargs"), COMPARISONS)
def test_compare_in_sql_agrees_with_python(
    demo_pair: Pair, left: str, right: str, kwargs: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpkg, pg = demo_pair
    before = pg.pushdowns["compare"]
    pushed = compare(left, right, store=pg, **kwargs)
    assert pg.pushdowns["compare"] == before + 1
    python = compare(left, right, store=gpkg, **kwargs)
    assert (pushed.left_total, pushed.left_matched, pushed.crs) == (
        python.left_total,
        python.left_matched,
        python.crs,
    )
    assert [s.to_dict() for s in pushed.sources] == [s.to_dict() for s in python.sources]
    assert pushed.summary.equals(python.summary)
    a = _sorted(pushed.matches, ["left_fid", "right_fid"])
    b = _sorted(python.matches, ["left_fid", "right_fid"])
    assert a.columns.tolist() == b.columns.tolist()
    assert len(a) == len(b) > 0
    # the same frame, dtypes included, as the Python path reading the same store (the two
    # stores' readers may give text columns different pandas dtypes)
    monkeypatch.setattr(pgsql, "compare_sql", lambda *args, **kw: None)
    plain = compare(left, right, store=pg, **kwargs)
    monkeypatch.undo()
    assert pg.pushdowns["compare"] == before + 1
    pd.testing.assert_frame_equal(
        pushed.matches, plain.matches, check_exact=False, rtol=1e-6, atol=1e-6
    )
    pd.testing.assert_frame_equal(pushed.summary, plain.summary)
    for col in a.columns:
        if col in ("distance_m", "overlap_m2", "overlap_m"):
            assert np.allclose(a[col], b[col], rtol=1e-6, atol=1e-6), col
        elif col == "geometry":
            assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all()
        else:
            # GDAL's fast GeoPackage read gives dates as dates, the stores give ISO text
            assert [str(v) for v in a[col]] == [str(v) for v in b[col]], col


def test_compare_in_sql_matches_sources_md(demo_pair: Pair) -> None:
    _, pg = demo_pair
    before = pg.pushdowns["compare"]
    allot = compare("allotments", "flood_risk", store=pg, by="prob_4band")
    s = allot.summary.set_index("class")["left_features"]
    assert allot.left_matched == 8 and allot.left_total == 35
    assert [s[b] for b in BANDS] == [4, 5, 4, 2]
    assert {"overlap_m2"} <= set(allot.matches.columns)
    high = allot.matches[allot.matches["prob_4band"] == "High"]["overlap_m2"].sum()
    assert round(high) == 13_084  # every pair's overlap, as SOURCES.md sums them
    trees = compare("street_trees", "flood_risk", store=pg, predicate="within", by="prob_4band")
    assert trees.left_matched == 532 and trees.left_total == 15_638
    t = trees.summary.set_index("class")["left_features"]
    assert [t[b] for b in BANDS] == [27, 61, 438, 11]
    assert pg.pushdowns["compare"] == before + 2


def test_nearest_and_frames_compare_in_python(demo_pair: Pair) -> None:
    gpkg, pg = demo_pair
    before = pg.pushdowns["compare"]
    a = compare("allotments", "watercourses", store=pg, predicate="nearest", k=2)
    b = compare("allotments", "watercourses", store=gpkg, predicate="nearest", k=2)
    assert np.allclose(
        _sorted(a.matches, ["left_fid", "right_fid"])["distance_m"],
        _sorted(b.matches, ["left_fid", "right_fid"])["distance_m"],
    )
    compare(pg.read_frame("allotments"), "flood_risk", store=pg)
    with pytest.raises(InputError, match="not a column"):
        compare("allotments", "flood_risk", store=pg, by="nope")
    assert pg.pushdowns["compare"] == before


def test_feature_summaries_agree_with_the_features(demo_pair: Pair) -> None:
    """Whole layers are summarised from the catalogue entry, parts by a scan: both give the
    count, bounds and geometry families of the features themselves."""
    import shapely

    _, pg = demo_pair
    box = (-2.40, 53.40, -2.30, 53.46)
    for entry in pg.list_layers():
        if entry.data_type != "vector":
            continue
        for bbox in (None, box):
            frame = pg.read_frame(entry.id, Query(bbox=bbox, columns=[]))
            got = pgsql.summarise_features(pg.sql(), entry.id, bbox)
            assert got is not None and got.count == len(frame), entry.id
            if len(frame):
                assert got.bounds == pytest.approx(tuple(frame.total_bounds), abs=1e-9), entry.id
            families = {t.removeprefix("MULTI") for t in got.geometry_types}
            types = shapely.get_type_id(frame.geometry.values)
            names = {shapely.GeometryType(int(t)).name for t in np.unique(types) if t >= 0}
            assert families == {n.removeprefix("MULTI") for n in names}, entry.id

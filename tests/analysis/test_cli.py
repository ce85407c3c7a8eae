"""The analysis commands as a user runs them: readable tables, --json, --out files that
carry credits, plain errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest

from landexplorer.cli import main


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def data_dir(demo_settings):
    return demo_settings.data_dir


def test_compare_json_and_table(capsys, data_dir):
    code, out, _ = run(
        capsys, data_dir, "compare", "allotments", "flood_risk", "--by", "prob_4band", "--json"
    )
    assert code == 0
    data = json.loads(out)
    summary = {row["class"]: row["left_features"] for row in data["summary"]}
    assert summary == {"(any)": 8, "High": 4, "Low": 4, "Medium": 5, "Very Low": 2}
    assert data["crs"] == "EPSG:27700" and len(data["matches"]) == data["pairs"] == 25
    assert {s["id"] for s in data["sources"]} == {"allotments", "flood_risk"}
    code, out, _ = run(
        capsys, data_dir, "compare", "allotments", "flood_risk", "--by", "prob_4band"
    )
    assert code == 0
    assert "8 of 35 features of allotments match flood_risk" in out
    assert "Measured in EPSG:27700" in out and "Environment Agency" in out


def test_compare_within_distance_to_files(capsys, data_dir, tmp_path):
    for suffix in (".csv", ".geojson", ".gpkg"):
        target = tmp_path / f"near{suffix}"
        code, _, _ = run(
            capsys,
            data_dir,
            "compare",
            "street_trees",
            "watercourses",
            "--predicate",
            "within-distance",
            "--distance",
            "50",
            "--out",
            str(target),
        )
        assert code == 0
        assert target.exists()
    csv = pd.read_csv(tmp_path / "near.csv")
    assert (csv["distance_m"] <= 50).all() and "geometry" in csv
    assert "Ordnance Survey" in (tmp_path / "near.csv.credits.txt").read_text()
    geo = json.loads((tmp_path / "near.geojson").read_text())
    assert len(geo["features"]) == len(csv)
    assert {c["id"] for c in geo["credits"]} == {"street_trees", "watercourses"}
    gpkg = gpd.read_file(tmp_path / "near.gpkg")
    assert len(gpkg) == len(csv)
    meta = pyogrio.read_info(tmp_path / "near.gpkg")["layer_metadata"]
    assert "watercourses" in meta["credits"]


def test_overlay_zonal_report(capsys, data_dir, tmp_path):
    code, out, _ = run(
        capsys,
        data_dir,
        "overlay",
        "flood_risk",
        "land_grade",
        "--by",
        "grade",
        "--left-by",
        "prob_4band",
        "--json",
    )
    assert code == 0
    totals = json.loads(out)["totals"]
    high2 = next(t for t in totals if t["prob_4band"] == "High" and t["class"] == "Grade 2")
    assert round(high2["area_m2"] / 1e6, 3) == 0.317
    code, out, _ = run(
        capsys,
        data_dir,
        "zonal",
        "flood_risk",
        "elevation",
        "--by",
        "prob_4band",
        "--method",
        "centre",
        "--json",
    )
    means = {r["prob_4band"]: round(r["mean"], 1) for r in json.loads(out)["stats"]}
    assert means == {"High": 17.5, "Low": 20.3, "Medium": 19.0, "Very Low": 24.2}
    out_file = tmp_path / "elev.geojson"
    code, _, _ = run(capsys, data_dir, "zonal", "allotments", "elevation", "--out", str(out_file))
    assert code == 0 and len(json.loads(out_file.read_text())["features"]) == 35
    code, out, _ = run(
        capsys, data_dir, "report", "wards:1", "--layers", "flood_risk,street_trees,elevation"
    )
    assert code == 0
    assert re.search(r"Area: [\d.,]+ ha", out) and "flood_risk" in out and "street_trees" in out
    area = tmp_path / "area.geojson"
    area.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [
                                    [-2.36, 53.40],
                                    [-2.34, 53.40],
                                    [-2.34, 53.41],
                                    [-2.36, 53.41],
                                    [-2.36, 53.40],
                                ]
                            ],
                        },
                    }
                ],
            }
        )
    )
    code, out, _ = run(capsys, data_dir, "report", str(area), "--json")
    assert code == 0 and json.loads(out)["crs"] == "EPSG:27700"


def test_plain_errors(capsys, data_dir, tmp_path):
    code, _, err = run(capsys, data_dir, "compare", "allotments", "nope")
    assert code == 1 and "no layer called 'nope'" in err and "Traceback" not in err
    code, _, err = run(
        capsys, data_dir, "compare", "allotments", "flood_risk", "--predicate", "within-distance"
    )
    assert code == 1 and "metres" in err
    code, _, err = run(capsys, data_dir, "report", str(tmp_path / "missing.geojson"))
    assert code == 1 and "no file" in err
    code, _, err = run(
        capsys, data_dir, "compare", "allotments", "flood_risk", "--out", str(tmp_path / "x.xlsx")
    )
    assert code == 1 and ".csv" in err

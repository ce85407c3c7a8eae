"""The command line, as a user runs it: plain messages, exit codes, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from landexplorer.cli import main


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ingest_list_show_set_delete(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, real_data: Path
) -> None:
    data = tmp_path / "data"
    csv = real_data / "allotments" / "trafford_allotments.csv"
    code, out, _ = run(capsys, data, "ingest", str(csv), "--id", "plots", "--title", "Our plots")
    assert code == 0
    assert "Stored layer plots (version 1)" in out
    assert "no licence yet, so it stays private" in out
    code, out, _ = run(capsys, data, "layers", "list", "--json")
    listed = json.loads(out)
    assert [(e["id"], e["feature_count"], e["visibility"]) for e in listed] == [
        ("plots", 35, "private")
    ]
    code, out, _ = run(
        capsys, data, "layers", "set", "plots", "--licence", "OGL-UK-3.0", "--visibility", "public"
    )
    assert code == 0
    code, out, _ = run(capsys, data, "layers", "show", "plots", "--json")
    shown = json.loads(out)
    assert shown["licence"] == "OGL-UK-3.0" and shown["visibility"] == "public"
    assert shown["report"]["assumed"]
    code, out, _ = run(capsys, data, "ingest", str(csv), "--id", "plots", "--replace", "--json")
    assert code == 0 and json.loads(out)[0]["version"] == 2
    code, out, _ = run(capsys, data, "layers", "delete", "plots", "--yes")
    assert code == 0
    code, out, _ = run(capsys, data, "layers", "list")
    assert "catalogue is empty" in out


def test_user_mistakes_exit_non_zero_without_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, real_data: Path
) -> None:
    data = tmp_path / "data"
    cases = [
        (["ingest", str(tmp_path / "missing.csv")], "There is no file"),
        (
            ["ingest", str(real_data / "listed_buildings" / "trafford_listed_buildings.csv")],
            "--crs EPSG:27700",
        ),
        (["layers", "show", "nothing"], "no layer called 'nothing'"),
        (
            [
                "ingest",
                str(real_data / "allotments" / "trafford_allotments.csv"),
                "--crs",
                "EPSG:0",
            ],
            "not a coordinate system",
        ),
        (["layers", "set", "nothing", "--licence", "x"], "no layer called"),
    ]
    for args, expected in cases:
        code, out, err = run(capsys, data, *args)
        assert code == 1, args
        text = " ".join((out + err).split())
        assert expected in text, (args, text)
        assert "Traceback" not in text


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, tmp_path, "layers", "frobnicate")
    assert code == 2 and "No such command" in err
    code, _, err = run(capsys, tmp_path, "ingest")
    assert code == 2


def test_data_dir_from_environment(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    real_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANDEXPLORER_DATA_DIR", str(tmp_path / "elsewhere"))
    assert main(["ingest", str(real_data / "allotments" / "trafford_allotments.geojson")]) == 0
    capsys.readouterr()
    assert (tmp_path / "elsewhere" / "landexplorer.gpkg").exists()

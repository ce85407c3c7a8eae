"""``layers list`` and ``layers show`` read well when piped or logged: whole ids, titles and
sources on one line each, no 80-column squeeze, no box drawing (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys

from landexplorer.settings import Settings


def _cli(settings: Settings, *args: str) -> str:
    env = {**os.environ, "COLUMNS": "80", "LANDEXPLORER_DATA_DIR": str(settings.data_dir)}
    run = subprocess.run(
        [sys.executable, "-m", "landexplorer.cli", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_layers_list_piped_is_a_plain_table(demo_gpkg_settings):
    text = _cli(demo_gpkg_settings, "layers", "list")
    lines = text.splitlines()
    assert lines[0] == "13 layer(s)"
    assert lines[1].split() == [
        "id", "title", "kind", "type", "features", "licence", "version", "visibility",
    ]  # fmt: skip
    assert not any(ch in text for ch in "│┃━─")
    rows = {line.split()[0]: line for line in lines[2:]}
    assert len(rows) == 13
    flood = rows["flood_risk"]
    assert "Flood risk from rivers and sea (RoFRS 2018)" in flood and "1,494" in flood
    assert len(flood) > 80  # a whole row on one line, however wide
    assert "OGL-UK-3.0 AND ODbL-1.0" in rows["allotments"]
    # the columns line up: every row's title starts where the header's does
    at = lines[1].index("title")
    assert all(line[at - 2 : at] == "  " and line[at] != " " for line in lines[2:])


def test_layers_show_piped_keeps_long_values_whole(demo_gpkg_settings):
    text = _cli(demo_gpkg_settings, "layers", "show", "allotments")
    source = next(line for line in text.splitlines() if line.startswith("source "))
    assert source.split()[-1].startswith("https://") and len(source) > 80
    assert source.split()[-1].endswith("trafford_allotments.geojson")

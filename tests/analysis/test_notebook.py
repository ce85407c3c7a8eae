"""The analyst notebook runs from top to bottom on the real Trafford data (nbclient), and
says what the data says."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "trafford_analysis.ipynb"


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(data.get("text/html", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_notebook_runs_and_finds_the_flood_risk(demo_gpkg_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDEXPLORER_DATA_DIR", str(demo_gpkg_settings.data_dir))
    monkeypatch.setenv("LANDEXPLORER_DEMO_MIRROR", str(demo_gpkg_settings.resolved_demo_mirror()))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel draws inline
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=dict(os.environ))
    text = _text(nb)
    assert "8 of 35 allotments touch a flood-risk area (measured in EPSG:27700)" in text
    assert "street trees stand within 50 m of a watercourse" in text
    assert "Environment Agency" in text  # credits
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the chart
    maps = [
        o
        for c in nb.cells
        for o in c.get("outputs", [])
        if "leaflet" in o.get("data", {}).get("text/html", "").lower()
    ]
    assert maps, "the folium map is shown inline"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []

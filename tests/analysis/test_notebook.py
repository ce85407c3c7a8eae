"""The analyst notebook is committed executed (a reader sees every result without running
it), runs from top to bottom on the real Trafford data (nbclient), says what the data says,
and a fresh run has the shape of the saved outputs: the same cells, the same kinds of
output, tables of the same size (numbers may differ where the data or libraries do)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "trafford_analysis.ipynb"


def _outputs(nb: Any) -> list[dict[str, Any]]:
    return [o for c in nb.cells for o in c.get("outputs", [])]


def _text(nb: Any) -> str:
    parts = []
    for output in _outputs(nb):
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts.append(data.get("text/plain", ""))
        parts.append(data.get("text/html", ""))
    return "\n".join(parts)


def _table_shape(html: str) -> tuple[int, int] | None:
    """(body rows, cells in the first body row) of the first HTML table, or None."""
    if "<table" not in html or "<tbody>" not in html:
        return None
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)
    first = len(re.findall(r"<t[hd][\s>]", rows[0])) if rows else 0
    return len(rows), first


def _shape(nb: Any) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Per cell: its type and, per output, its kind, media types, table shape, and for
    printed text the words with every number masked."""
    cells = []
    for cell in nb.cells:
        outs = []
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if o["output_type"] == "stream":
                masked = re.sub(r"\d[\d,.]*", "#", o.get("text", ""))
                outs.append(("stream", o.get("name"), masked))
            else:
                outs.append(
                    (o["output_type"], tuple(sorted(data)), _table_shape(data.get("text/html", "")))
                )
        cells.append((cell.cell_type, outs))
    return cells


def _check_findings(nb: Any) -> None:
    text = _text(nb)
    assert "8 of 35 allotments touch a flood-risk area (measured in EPSG:27700)" in text
    assert "street trees stand within 50 m of a watercourse" in text
    assert "Environment Agency" in text  # credits
    images = [o for o in _outputs(nb) if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the chart
    maps = [o for o in _outputs(nb) if "leaflet" in o.get("data", {}).get("text/html", "").lower()]
    assert maps, "the folium map is shown inline"
    assert [o for o in _outputs(nb) if o.get("output_type") == "error"] == []


def test_saved_notebook_shows_its_results():
    """What someone reading the notebook on a web page sees, without running anything."""
    saved = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in saved.cells if c.cell_type == "code"]
    assert code and all(c.get("outputs") for c in code), "every code cell has its output saved"
    assert [c.get("execution_count") for c in code] == list(range(1, len(code) + 1))
    _check_findings(saved)
    # no trace of the machine it was run on
    raw = NOTEBOOK.read_text(encoding="utf-8")
    assert "/tmp/" not in raw and "/home/" not in raw and "/work/" not in raw


@pytest.mark.slow
def test_fresh_run_has_the_saved_shape(demo_gpkg_settings, tmp_path, monkeypatch):
    from notebooks.execute import execute

    monkeypatch.setenv("LANDEXPLORER_DATA_DIR", str(demo_gpkg_settings.data_dir))
    monkeypatch.setenv("LANDEXPLORER_DEMO_MIRROR", str(demo_gpkg_settings.resolved_demo_mirror()))
    fresh = execute(NOTEBOOK, tmp_path)
    _check_findings(fresh)
    saved = nbformat.read(NOTEBOOK, as_version=4)
    assert len(fresh.cells) == len(saved.cells)
    assert [c.source for c in fresh.cells] == [c.source for c in saved.cells]
    for i, (got, want) in enumerate(zip(_shape(fresh), _shape(saved), strict=True)):
        assert got == want, f"cell {i}: a fresh run differs from the saved outputs"

"""schemathesis, driven by the server's own OpenAPI document, finds no server error (5xx)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _st() -> str:
    st = Path(sys.executable).with_name("st")
    return str(st) if st.exists() else (shutil.which("st") or "st")


@pytest.mark.slow
@pytest.mark.parametrize("collection", [None, "allotments", "flood_risk"])
def test_no_server_error(live_url, tmp_path, collection):
    config = tmp_path / "schemathesis.toml"
    # Random ids mostly hit 404s; fixing the collection sends the fuzzing deeper.
    config.write_text(f'[parameters]\n"path.collectionId" = "{collection}"\n' if collection else "")
    run = subprocess.run(
        [_st(), "--config-file", str(config), "run", f"{live_url}/openapi.json",
         "--checks", "not_a_server_error", "--max-examples", "15", "--seed", "20261128",
         "--phases", "coverage,fuzzing", "--request-timeout", "30", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    summary = run.stdout.split("SUMMARY")[-1]
    assert " passed" in summary and "Server error" not in summary


@pytest.mark.slow
def test_no_server_error_in_writes(tmp_path, real_data):
    """With the token, on a catalogue of its own: uploads, replace, patch, delete fuzzed."""
    from landexplorer.catalog import open_store
    from landexplorer.layers.ingest import IngestOptions, ingest
    from landexplorer.settings import Settings
    from tests.api.conftest import serve

    settings = Settings(data_dir=tmp_path / "data", demo_mirror=real_data)
    store = open_store(settings)
    src = real_data / "allotments" / "trafford_allotments.geojson"
    ingest(store, [src], IngestOptions(id="allotments", licence="OGL-UK-3.0"))
    store.close()
    config = tmp_path / "schemathesis.toml"
    config.write_text('[parameters]\n"path.collectionId" = "allotments"\n')
    with serve(settings, LANDEXPLORER_WRITE_TOKEN="fuzz-token") as url:
        run = subprocess.run(
            [_st(), "--config-file", str(config), "run", f"{url}/openapi.json",
             "--checks", "not_a_server_error", "--max-examples", "15", "--seed", "20261128",
             "--phases", "coverage,fuzzing", "--request-timeout", "60", "--no-color",
             "--include-path-regex", "^/(collections|jobs)",
             "-H", "Authorization: Bearer fuzz-token"],
            capture_output=True, text=True, timeout=900, cwd=tmp_path,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    assert "Server error" not in run.stdout.split("SUMMARY")[-1]

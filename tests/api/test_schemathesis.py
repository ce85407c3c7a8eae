"""schemathesis, driven by the server's own OpenAPI document, finds no server error (5xx)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("collection", [None, "allotments", "flood_risk"])
def test_no_server_error(live_url, tmp_path, collection):
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        st = Path(shutil.which("st") or "st")
    config = tmp_path / "schemathesis.toml"
    # Random ids mostly hit 404s; fixing the collection sends the fuzzing deeper.
    config.write_text(f'[parameters]\n"path.collectionId" = "{collection}"\n' if collection else "")
    run = subprocess.run(
        [str(st), "--config-file", str(config), "run", f"{live_url}/openapi.json",
         "--checks", "not_a_server_error", "--max-examples", "15", "--seed", "20261128",
         "--phases", "coverage,fuzzing", "--request-timeout", "30", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
    summary = run.stdout.split("SUMMARY")[-1]
    assert " passed" in summary and "Server error" not in summary

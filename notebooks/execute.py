"""Run the analyst notebook from top to bottom and save it with its outputs.

    LANDEXPLORER_DATA_DIR=/path/to/data .venv/bin/python notebooks/execute.py

The catalogue is the one in ``LANDEXPLORER_DATA_DIR`` (the notebook loads whatever part of
the demo is missing). The saved outputs are what a reader of the notebook sees without
running it; tests/analysis/test_notebook.py checks that a fresh run has the same shape.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().with_name("trafford_analysis.ipynb")


def execute(path: Path, workdir: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` run in a fresh kernel (cwd ``workdir``), outputs in place."""
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel draws inline
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        record_timing=False,  # no timestamps in the saved file
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=env)
    return nb


def main() -> None:
    workdir = Path(sys.argv[1]) if len(sys.argv) > 1 else NOTEBOOK.parent
    nb = execute(NOTEBOOK, workdir)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, NOTEBOOK)
    print(f"saved {NOTEBOOK} with outputs ({NOTEBOOK.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

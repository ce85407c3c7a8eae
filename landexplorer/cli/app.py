"""The typer application and what every command shares: settings, the store, output."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from landexplorer.catalog import Store, open_store
from landexplorer.settings import Settings

app = typer.Typer(
    name="landexplorer",
    help="Put community land data beside open flood, soil and designation layers, "
    "compare them and share what you find.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
layers_app = typer.Typer(
    help="List, show, change and delete catalogued layers.", no_args_is_help=True
)
app.add_typer(layers_app, name="layers")

out = Console(highlight=False)
# Messages are not wrapped at 80 columns when piped or logged (make demo, CI logs): a line
# stays one line. Tables size themselves from the terminal (see layers_cmd).
err = Console(stderr=True, highlight=False, soft_wrap=True)


class State:
    """Built once per run by the callback; commands take settings and the store from here."""

    settings: Settings | None = None
    debug: bool = False
    _store: Store | None = None

    def store(self) -> Store:
        if self._store is None:
            assert self.settings is not None
            self._store = open_store(self.settings)
        return self._store

    def close_store(self) -> None:
        """Close the store this run opened, if any (PostGIS: its connection pool)."""
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):  # the command's own outcome stands
                store.close()


state = State()


@app.callback()
def _main(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Folder holding the catalogue (default: ./data, or LANDEXPLORER_DATA_DIR).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
) -> None:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    state.settings = Settings(**overrides)
    state.debug = debug
    state._store = None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")

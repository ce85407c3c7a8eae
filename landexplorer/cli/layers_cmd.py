"""``landexplorer ingest``, ``landexplorer layers ...`` and ``landexplorer demo``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from landexplorer.catalog.model import LayerEntry
from landexplorer.cli.app import app, err, layers_app, out, print_json, state
from landexplorer.layers.ingest import IngestOptions, import_gdal_lean, ingest


class _Rate:
    """Progress display: features stored so far and features per second."""

    def __init__(self, label: str) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=None),
            TextColumn("{task.completed:,.0f} features"),
            TextColumn("[cyan]{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self.started = time.perf_counter()
        self.task = self.progress.add_task(label, total=None, rate="")

    def __enter__(self) -> _Rate:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, done: int) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        self.progress.update(self.task, completed=done, rate=f"{done / elapsed:,.0f}/s")


def _fmt_bbox(entry: LayerEntry) -> str:
    if not entry.bbox:
        return "-"
    return ", ".join(f"{v:.4f}" for v in entry.bbox)


def _plain(rows: Sequence[tuple[str, ...]], header: tuple[str, ...] | None = None) -> None:
    """Rows in aligned columns, never cut or wrapped: for pipes, logs and files."""
    lines = ([header] if header else []) + list(rows)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        text = "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
        out.print(text.rstrip(), markup=False, highlight=False, soft_wrap=True)


def _show(entry: LayerEntry) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("id", entry.id),
        ("title", entry.title),
        ("kind", f"{entry.kind} ({entry.data_type})"),
        ("visibility", entry.visibility + ("" if entry.licence else " (no licence yet)")),
        ("licence", entry.licence or "-"),
        ("attribution", entry.attribution or "-"),
        ("source", entry.source or "-"),
        ("source CRS", entry.source_crs or "-"),
        ("version", str(entry.version)),
        ("updated", entry.updated),
        ("bbox (lon/lat)", _fmt_bbox(entry)),
        ("checksum", entry.checksum),
    ]
    if entry.data_type == "vector":
        rows.insert(3, ("features", f"{entry.feature_count:,} {entry.geometry_type}"))
        rows.append(("columns", ", ".join(f"{c.name} ({c.type})" for c in entry.columns) or "-"))
    else:
        r = entry.raster
        rows.insert(
            3,
            (
                "raster",
                f"{r.get('width')} x {r.get('height')} cells, {r.get('bands')} band(s), "
                f"{r.get('dtype')}, {r.get('resolution', ['?'])[0]} m",
            ),
        )
    if entry.description:
        rows.insert(2, ("description", entry.description))
    if not out.is_terminal:
        _plain([(key, str(value)) for key, value in rows])
    else:
        for key, value in rows:
            table.add_row(key, str(value))
        out.print(table)
    lines = entry.report.summary() if entry.data_type == "vector" else entry.report.notes
    if lines:
        out.print("[bold]ingest report[/]")
        for line in lines:
            out.print(f"  - {line}")


def _print_listing(entries: list[LayerEntry]) -> None:
    """The layers as a table: rich, as wide as the terminal, on a terminal; plain aligned
    columns (whole ids and titles, no 80-column squeeze) when piped or logged."""
    header = ("id", "title", "kind", "type", "features", "licence", "version", "visibility")
    rows = [
        (
            e.id,
            e.title,
            e.kind,
            e.geometry_type if e.data_type == "vector" else "raster",
            f"{e.feature_count:,}" if e.data_type == "vector" else "-",
            e.licence or "-",
            str(e.version),
            e.visibility,
        )
        for e in entries
    ]
    if not out.is_terminal:
        out.print(f"{len(entries)} layer(s)", markup=False, highlight=False)
        _plain(rows, header)
        return
    table = Table(title=f"{len(entries)} layer(s)", title_justify="left")
    for col in header:
        # ids never wrap (they are typed back in commands); on a narrow terminal the
        # other cells fold onto more lines rather than lose letters
        table.add_column(col, no_wrap=col == "id", overflow="fold")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _check_people(owner: str | None, group: str | None) -> None:
    """An owner or group named on the command line must exist: said before any work."""
    if not owner and not group:
        return
    from landexplorer.access.store import AccessStore
    from landexplorer.errors import InputError

    access = AccessStore.beside(state.store())
    try:
        if owner:
            access.require_user(owner)
        if group and access.get_group(group) is None:
            raise InputError(
                f"There is no group called '{group}'. `landexplorer groups list` shows them; "
                f"`landexplorer groups add {group} --title ...` makes it."
            )
    finally:
        access.close()


def _audit(action: str, layer: str, version: int = 0, **detail: object) -> None:
    """A change made at the command line goes in the audit log as the operator."""
    from landexplorer.access.model import OPERATOR
    from landexplorer.access.store import AccessStore

    access = AccessStore.beside(state.store())
    try:
        access.audit(OPERATOR, action, layer, version, **detail)
    finally:
        access.close()


@app.command("ingest")
def ingest_command(
    paths: Annotated[
        list[Path],
        typer.Argument(help="The file to load (several only for tiles of one raster)."),
    ],
    layer_id: Annotated[
        str | None, typer.Option("--id", help="Layer id (default: from the file name).")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Title shown on the map.")] = None,
    description: Annotated[str | None, typer.Option(help="A sentence about the data.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="community (the default), open or reference.")
    ] = None,
    licence: Annotated[
        str | None,
        typer.Option(
            "--licence",
            "--license",
            help="SPDX licence id or expression, e.g. OGL-UK-3.0, CC-BY-4.0, "
            "'ODbL-1.0 AND CC-BY-4.0'. Without one the layer stays private.",
        ),
    ] = None,
    attribution: Annotated[
        str | None, typer.Option(help="Credit line shown with the data.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Where the data came from.")] = None,
    owner: Annotated[
        str | None, typer.Option(help="The account that owns the layer (it must exist).")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="The group the layer belongs to (it must exist).")
    ] = None,
    visibility: Annotated[
        str | None,
        typer.Option(
            help="private (owner, group stewards, admins), group (its members), link (also "
            "anyone with a share link) or public (default: public when licensed)."
        ),
    ] = None,
    crs: Annotated[
        str | None, typer.Option(help="Coordinate system of the file, e.g. EPSG:27700.")
    ] = None,
    x: Annotated[
        str | None, typer.Option("--x", help="CSV column holding x / longitude / easting.")
    ] = None,
    y: Annotated[
        str | None, typer.Option("--y", help="CSV column holding y / latitude / northing.")
    ] = None,
    wkt: Annotated[str | None, typer.Option(help="CSV column holding WKT shapes.")] = None,
    layer: Annotated[
        str | None, typer.Option(help="Layer inside a GeoPackage (default: all).")
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            help="Store as a new version of an existing layer. Title, description, kind, "
            "owner, visibility, licence, attribution and source are kept unless given."
        ),
    ] = False,
    allow_type_change: Annotated[
        bool,
        typer.Option(
            "--allow-type-change",
            help="Let --replace turn a raster layer into a vector one, or back.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the catalogue entry as JSON.")
    ] = False,
    make_pyramid: Annotated[
        bool,
        typer.Option(
            "--pyramid/--no-pyramid",
            help="For a layer too big to draw zoomed out on request, make its low-zoom "
            "tiles now (tippecanoe; minutes for millions of features). With --no-pyramid: "
            "later, with `landexplorer tiles build`.",
        ),
    ] = True,
) -> None:
    """Load a file into the catalogue: CSV, GeoJSON, KML, zipped shapefile, GeoPackage,
    FlatGeobuf, GeoParquet, GeoTIFF or ASCII grid (zips of grid tiles are joined)."""
    assert state.settings is not None
    import_gdal_lean()  # this process only ingests: skip pyogrio's pandas probe
    _check_people(owner, group)
    options = IngestOptions(
        id=layer_id,
        title=title,
        description=description,
        kind=kind,
        licence=licence,
        attribution=attribution,
        source=source,
        owner=owner,
        group=group,
        visibility=visibility,
        crs=crs,
        x=x,
        y=y,
        wkt=wkt,
        layer=layer,
        replace=replace,
        allow_type_change=allow_type_change,
        batch_size=state.settings.batch_size,
    )
    store = state.store()
    with _Rate(f"Loading {paths[0].name}") as progress:
        entries = ingest(store, paths, options, progress=progress)
    for entry in entries:
        _audit("update" if replace else "upload", entry.id, entry.version, via="command line")
    if make_pyramid:
        from landexplorer.cli.tiles_cmd import build_pyramid
        from landexplorer.tiles.pyramid import planned_max_zoom

        for entry in entries:
            top = planned_max_zoom(store, entry) if entry.data_type == "vector" else None
            if top is not None:
                build_pyramid(store, entry, top, say_to=err if as_json else out)
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    for entry in entries:
        out.print(
            f"[green]Stored[/] layer [bold]{entry.id}[/] (version {entry.version}) "
            f"in {store.backend} catalogue."
        )
        if entry.report.kept:
            kept = ", ".join(entry.report.kept)
            out.print(
                f"Kept from version {entry.report.kept_from_version}: {kept} "
                "(give new values with --title, --licence, ... to change them)."
            )
        _show(entry)
        if not entry.licence:
            out.print(
                "[yellow]This layer has no licence yet, so it stays private. Set one with "
                f"`landexplorer layers set {entry.id} --licence ...`.[/]"
            )


@layers_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every layer in the catalogue."""
    entries = state.store().list_layers()
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    if not entries:
        out.print(
            "The catalogue is empty. Load a file with `landexplorer ingest FILE`, "
            "or the demo data with `landexplorer demo`."
        )
        return
    _print_listing(entries)


@layers_app.command("show")
def show_command(
    layer_id: Annotated[str, typer.Argument(help="The layer's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show one layer's catalogue entry and ingest report."""
    entry = state.store().get(layer_id)
    if as_json:
        print_json(entry.to_dict())
    else:
        _show(entry)


@layers_app.command("delete")
def delete_command(
    layer_id: Annotated[str, typer.Argument(help="The layer's id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a layer and its data."""
    store = state.store()
    entry = store.get(layer_id)
    if not yes and not typer.confirm(f"Delete '{entry.title}' ({entry.id})?", default=False):
        err.print("Nothing was deleted.")
        raise typer.Exit(1)
    store.delete(layer_id)
    _audit("delete", layer_id, entry.version)
    out.print(f"Deleted layer [bold]{layer_id}[/].")


@layers_app.command("set")
def set_command(
    layer_id: Annotated[str, typer.Argument(help="The layer's id.")],
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    licence: Annotated[str | None, typer.Option("--licence", "--license")] = None,
    attribution: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[str | None, typer.Option(help="The account that owns the layer.")] = None,
    group: Annotated[
        str | None, typer.Option(help="The group the layer belongs to ('' for none).")
    ] = None,
    visibility: Annotated[str | None, typer.Option(help="private, group, link or public.")] = None,
) -> None:
    """Change a layer's details (title, licence, visibility, ...) without a new version."""
    from landexplorer.catalog.model import KINDS, VISIBILITIES, normalise_licence
    from landexplorer.errors import InputError

    changes = {
        k: v
        for k, v in {
            "title": title,
            "description": description,
            "kind": kind,
            "licence": licence,
            "attribution": attribution,
            "owner": owner,
            "group": group,
            "visibility": visibility,
        }.items()
        if v is not None
    }
    if not changes:
        raise InputError("Say what to change, for example --licence OGL-UK-3.0.")
    if kind is not None and kind not in KINDS:
        raise InputError(f"The kind must be one of {', '.join(KINDS)}.")
    if visibility is not None and visibility not in VISIBILITIES:
        raise InputError(f"The visibility must be one of {', '.join(VISIBILITIES)}.")
    store = state.store()
    store.get(layer_id)  # a missing layer is said first
    _check_people(owner, group)
    if licence is not None:
        changes["licence"] = normalise_licence(licence)
    entry = store.update_metadata(layer_id, **changes)
    _audit("details changed", layer_id, entry.version, **changes)
    _show(entry)


# `layers update` is the same command (the word the access docs use)
layers_app.command("update", help="The same as `layers set`.")(set_command)


@app.command("demo")
def demo_command(
    replace: Annotated[bool, typer.Option(help="Load every demo layer again.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Load the Trafford demo data (real open data) into the catalogue and list it."""
    from landexplorer.layers.demo import DemoLayer, load_demo

    assert state.settings is not None
    store = state.store()

    def said(layer: DemoLayer, entry: LayerEntry | None, origin: str) -> None:
        if entry is None:
            err.print(f"  {layer.id}: already loaded")
        else:
            what = f"{entry.feature_count:,} features" if entry.data_type == "vector" else "raster"
            err.print(f"  {layer.id}: loaded from {origin} ({what}, {entry.report.seconds:.2f} s)")

    err.print(f"Loading the demo into {state.settings.catalog_path} ...")
    entries = load_demo(store, state.settings, replace=replace, on_layer=said)
    if as_json:
        print_json([e.to_dict() for e in entries])
    else:
        _print_listing(store.list_layers())

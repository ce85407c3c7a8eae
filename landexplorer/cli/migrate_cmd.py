"""``landexplorer migrate --to postgresql://...``: move the GeoPackage catalogue to PostGIS."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from landexplorer.cli.app import app, err, out, print_json, state
from landexplorer.errors import InputError


@app.command("migrate")
def migrate_command(
    to: Annotated[
        str,
        typer.Option("--to", help="The PostgreSQL database to copy into: postgresql://..."),
    ],
    replace: Annotated[
        bool, typer.Option(help="Copy layers again even if the database already has them.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Copy the whole GeoPackage catalogue (layers, versions, licences, rasters' entries)
    into PostgreSQL + PostGIS and check the feature counts. The GeoPackage is not changed;
    afterwards set LANDEXPLORER_DATABASE_URL to the same URL to use the new catalogue."""
    from landexplorer.catalog.gpkg import GeoPackageStore
    from landexplorer.catalog.migrate import migrate
    from landexplorer.catalog.postgis import PostGISStore

    settings = state.settings
    assert settings is not None
    if not to.startswith(("postgresql://", "postgres://")):
        raise InputError("--to must be a PostgreSQL URL such as postgresql://user@host/dbname.")
    if not settings.catalog_path.exists():
        raise InputError(f"There is no GeoPackage catalogue at {settings.catalog_path} to copy.")
    source = GeoPackageStore(settings.catalog_path, settings.raster_dir)
    # rasters stay where they are: the new catalogue lists the same COG files
    target = PostGISStore(to, settings.raster_dir)
    try:
        report = migrate(
            source,
            target,
            replace=replace,
            progress=lambda layer_id, status: err.print(f"  {layer_id}: {status}"),
            batch_size=settings.batch_size,
        )
    finally:
        source.close()
        target.close()
    if as_json:
        print_json([r.__dict__ for r in report.layers])
    else:
        table = Table(title="migration", title_justify="left")
        for col in ("layer", "type", "status", "features (GeoPackage)", "features (PostGIS)", ""):
            table.add_column(col)
        for r in report.layers:
            table.add_row(
                r.id,
                r.data_type,
                r.status,
                f"{r.source_count:,}",
                f"{r.target_count:,}",
                r.message,
            )
        out.print(table)
    for a in report.access:
        err.print(
            f"  {a.what}: {a.source_count:,} in the GeoPackage's access.sqlite, {a.added:,} added"
        )
    if report.history is not None and report.history.source_count:
        h = report.history
        err.print(f"  {h.what}: {h.source_count:,} in the GeoPackage's history, {h.added:,} added")
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts().items()))
    err.print(f"Done: {counts or 'nothing to copy'}.")
    if not report.ok:
        raise typer.Exit(1)

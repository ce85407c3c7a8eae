"""``landexplorer compare``, ``report``, ``zonal`` and ``map``: thin wrappers over
``landexplorer.analysis`` that print readable tables, or JSON with ``--json``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from landexplorer.cli.app import app, out, print_json, state
from landexplorer.errors import InputError

if TYPE_CHECKING:  # imported where used: every CLI command (ingest too) loads this module
    import pandas as pd

    from landexplorer.analysis.sources import Source


def _table(frame: pd.DataFrame, title: str, limit: int = 40) -> Table:
    import pandas as pd

    table = Table(title=title, title_justify="left")
    for col in frame.columns:
        if col == "geometry":
            continue
        table.add_column(
            str(col),
            overflow="fold",
            justify="right" if pd.api.types.is_numeric_dtype(frame[col]) else "left",
        )
    for row in frame.head(limit).itertuples(index=False):
        cells = []
        for col, value in zip(frame.columns, row, strict=True):
            if col == "geometry":
                continue
            cells.append(_fmt(col, value))
        table.add_row(*cells)
    if len(frame) > limit:
        table.caption = f"first {limit} of {len(frame):,} rows (use --out or --json for all)"
    return table


def _fmt(col: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        if col == "share":
            return f"{value:.1%}"
        if col.endswith(("_m2", "_m")):
            return f"{value:,.0f}"
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _credits(sources: list[Source], crs_used: str) -> None:
    from landexplorer.analysis.export import credit_lines

    out.print(f"[dim]Measured in {crs_used}.[/]")
    for line in credit_lines(sources):
        out.print(f"[dim]{line}[/]")


def _notes(notes: list[str]) -> None:
    for note in notes:
        out.print(f"[yellow]{note}[/]")


@app.command("compare")
def compare_command(
    left: Annotated[
        str, typer.Argument(help="Layer whose features are checked (e.g. allotments).")
    ],
    right: Annotated[str, typer.Argument(help="Layer to compare them with (e.g. flood_risk).")],
    predicate: Annotated[
        str, typer.Option(help="intersects, within, contains, within-distance or nearest.")
    ] = "intersects",
    distance: Annotated[
        float | None,
        typer.Option(
            help="Metres: how near counts (within-distance), or the furthest to look (nearest)."
        ),
    ] = None,
    k: Annotated[
        int | None, typer.Option("--k", help="How many nearest features (nearest).")
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="Column of RIGHT to summarise by, e.g. prob_4band.")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the pairs to .csv, .geojson or .gpkg.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Which features of LEFT meet features of RIGHT (and how many, by class of RIGHT)."""
    from landexplorer.analysis import compare
    from landexplorer.analysis.export import write_result

    result = compare(
        left, right, store=state.store(), predicate=predicate, distance=distance, k=k, by=by
    )
    if out_file is not None:
        write_result(result.matches, out_file, result.sources, result.crs)
    if as_json:
        print_json(result.to_dict(with_matches=out_file is None))
        return
    what = predicate + (f" {distance:g} m" if distance is not None else "")
    out.print(
        f"[bold]{result.left_matched:,}[/] of {result.left_total:,} features of "
        f"[bold]{left}[/] match [bold]{right}[/] ({what})."
    )
    if len(result.summary):
        out.print(_table(result.summary, "Summary"))
    if len(result.matches):
        out.print(_table(_pairs_view(result), f"{len(result.matches):,} pairs", limit=20))
    if out_file is not None:
        out.print(f"Pairs written to {out_file}.")
    _notes(result.notes)
    _credits(result.sources, result.crs)


def _pairs_view(result: Any) -> pd.DataFrame:
    """A few telling columns of the pairs, so the table fits a terminal."""
    import pandas as pd

    m = result.matches
    cols = list(m.columns)
    right_at = cols.index("right_fid")
    left_text = [c for c in cols[1:right_at] if pd.api.types.is_string_dtype(m[c])][:1]
    right_cols = cols[right_at + 1 :]
    by_col = [c for c in (result.by, f"{result.by}_right") if c and c in right_cols][-1:]
    right_text = by_col or [c for c in right_cols if pd.api.types.is_string_dtype(m[c])][:1]
    measures = [c for c in ("distance_m", "overlap_m2", "overlap_m") if c in cols]
    return pd.DataFrame(m[["left_fid", *left_text, "right_fid", *right_text, *measures]])


@app.command("overlay")
def overlay_command(
    left: Annotated[str, typer.Argument(help="Layer to measure (e.g. allotments).")],
    right: Annotated[str, typer.Argument(help="Polygon layer of classes (e.g. flood_risk).")],
    by: Annotated[str | None, typer.Option(help="Column of RIGHT holding the classes.")] = None,
    left_by: Annotated[
        str | None, typer.Option(help="Also group totals by this LEFT column.")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write per-feature amounts to .csv.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """How much of LEFT (area, length or count) falls in each class of RIGHT."""
    from landexplorer.analysis import overlay_areas
    from landexplorer.analysis.export import write_result

    result = overlay_areas(left, right, store=state.store(), by=by, left_by=left_by)
    if out_file is not None:
        write_result(result.per_feature, out_file, result.sources, result.crs)
    if as_json:
        print_json(result.to_dict(with_features=out_file is None))
        return
    out.print(_table(result.totals, f"{left} by {by or 'any'} of {right} ({result.measure})"))
    _notes(result.notes)
    _credits(result.sources, result.crs)


def _read_area(area: str) -> Any:
    """A polygon from a file, or ``LAYER:FID`` naming a catalogued feature."""
    path = Path(area)
    if not path.exists() and ":" in area:
        layer, _, fid = area.partition(":")
        if fid.isdigit():
            return (layer, int(fid))
    if not path.exists():
        raise InputError(f"There is no file '{area}' (or give LAYER:FID, e.g. wards:3).")
    import pyogrio

    try:
        frame = pyogrio.read_dataframe(path)
    except Exception as exc:
        raise InputError(
            f"'{path.name}' could not be read as a map file.", detail=str(exc)
        ) from exc
    if frame.crs is None:
        frame = frame.set_crs("EPSG:4326")
    return frame


@app.command("report")
def report_command(
    area: Annotated[
        str,
        typer.Argument(help="File holding the area's polygon (GeoJSON, GPKG, ...), or LAYER:FID."),
    ],
    layers: Annotated[
        str | None, typer.Option(help="Comma-separated layer ids (default: every public layer).")
    ] = None,
    by: Annotated[
        list[str] | None, typer.Option(help="LAYER=COLUMN to break a layer down by (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What every layer holds inside an area: counts, areas and shares by class, lengths,
    raster statistics."""
    from landexplorer.analysis import area_report

    mapping = {}
    for item in by or []:
        layer_id, sep, column = item.partition("=")
        if not sep:
            raise InputError("Give --by as LAYER=COLUMN, e.g. --by flood_risk=prob_4band.")
        mapping[layer_id] = column
    ids = [x.strip() for x in layers.split(",") if x.strip()] if layers else None
    report = area_report(state.store(), _read_area(area), layers=ids, by=mapping)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(
        f"Area: [bold]{report.area_m2 / 10_000:,.2f} ha[/] "
        f"({report.area_m2 / 1e6:,.3f} km²), measured in {report.crs}."
    )
    _notes(report.notes)
    table = Table(title="What the area holds", title_justify="left")
    for col in ("layer", "kind", "features", "inside", "share", "by class"):
        table.add_column(col, overflow="fold")
    for layer in report.layers:
        table.add_row(
            layer.layer,
            layer.kind,
            f"{layer.count:,}",
            _amount(layer),
            "-" if layer.share is None else f"{layer.share:.1%}",
            _classes(layer),
        )
    out.print(table)
    for layer in report.layers:
        if layer.licence or layer.attribution:
            out.print(f"[dim]{layer.layer}: {layer.attribution or '-'} ({layer.licence or '-'})[/]")


def _amount(layer: Any) -> str:
    if layer.kind == "raster":
        s = layer.stats
        if not s.get("count"):
            return "no cells"
        return f"mean {s['mean']:.1f}, min {s['min']:.1f}, max {s['max']:.1f}"
    if layer.amount is None:
        return "-"
    if layer.unit == "m2":
        return f"{layer.amount / 10_000:,.2f} ha"
    if layer.unit == "m":
        return f"{layer.amount / 1000:,.2f} km"
    return f"{layer.amount:,.0f}"


def _classes(layer: Any) -> str:
    parts = []
    for c in layer.classes:
        if c["class"] == "(none)" and len(layer.classes) == 1:
            continue
        if "area_m2" in c:
            parts.append(f"{c['class']}: {c['area_m2'] / 10_000:,.2f} ha")
        elif "length_m" in c:
            parts.append(f"{c['class']}: {c['length_m'] / 1000:,.2f} km")
        else:
            parts.append(f"{c['class']}: {c['count']:,}")
    return "; ".join(parts) or "-"


@app.command("zonal")
def zonal_command(
    layer: Annotated[str, typer.Argument(help="Polygon layer (e.g. allotments).")],
    raster: Annotated[str, typer.Argument(help="Raster layer id or file (e.g. elevation).")],
    stats: Annotated[
        str,
        typer.Option(help="Comma-separated: count, mean, min, max, std, median, majority, p10 ..."),
    ] = "count,mean,min,max",
    method: Annotated[
        str, typer.Option(help="coverage (weighted, default) or centre.")
    ] = "coverage",
    by: Annotated[
        str | None, typer.Option(help="Dissolve the polygons by this column first.")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write to .csv, .geojson or .gpkg.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Raster statistics (e.g. mean elevation) under each polygon of a layer."""
    from landexplorer.analysis import zonal_stats
    from landexplorer.analysis.export import write_result

    store = state.store()
    result = zonal_stats(layer, raster, store=store, stats=stats.split(","), method=method, by=by)
    if out_file is not None:
        frame: pd.DataFrame = result.stats
        if by is None and out_file.suffix.lower() != ".csv":
            import geopandas as gpd

            shapes = store.read_frame(layer, None).geometry
            frame = gpd.GeoDataFrame(
                result.stats,
                geometry=shapes.reindex(result.stats["fid"]).to_numpy(),
                crs="EPSG:4326",
            )
        write_result(frame, out_file, result.sources, result.crs)
    if as_json:
        print_json(result.to_dict())
        return
    out.print(_table(result.stats, f"{raster} under {layer} ({result.method})"))
    _notes(result.notes)
    _credits(result.sources, result.crs)


@app.command("map")
def map_command(
    layers: Annotated[list[str] | None, typer.Argument(help="Layers to show.")] = None,
    compare_pair: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--compare", help="LEFT RIGHT: show LEFT coloured by the RIGHT class it meets."
        ),
    ] = None,
    by: Annotated[str | None, typer.Option(help="Class column of RIGHT (with --compare).")] = None,
    out_file: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path(
        "map.html"
    ),
) -> None:
    """Write a map (HTML, opens offline) of layers and of a comparison."""
    from landexplorer.maps import write_map

    if not layers and not compare_pair:
        raise InputError("Name at least one layer to show, or --compare LEFT RIGHT.")
    path = write_map(state.store(), list(layers or []), out_file, compare=compare_pair, by=by)
    out.print(f"Map written to {path}. Open it in a browser; it needs no internet.")

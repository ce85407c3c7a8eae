"""Writing analysis results to files (CSV, GeoJSON, GeoPackage) with their credits.

Licences and attributions travel with every export: as foreign members of a GeoJSON
FeatureCollection, as layer metadata in a GeoPackage, and as a ``.credits.txt`` file
beside a CSV (a comment line would break CSV readers). Each also says what the result
obliges, in plain words (``licences``: attribution, share-alike, non-commercial,
no-derivatives) and whether it may be published as a layer of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd

from landexplorer.access.licences import Combined, combine
from landexplorer.analysis.results import credits
from landexplorer.analysis.sources import Source
from landexplorer.errors import InputError

FORMATS = (".csv", ".geojson", ".json", ".gpkg")


def credit_lines(sources: list[Source]) -> list[str]:
    """One line per input layer: 'id: attribution (licence)'."""
    return [
        f"{c['id']}: {c['attribution'] or 'no attribution given'} "
        f"({c['licence'] or 'no licence given'})"
        for c in credits(sources)
    ]


def obligation_of_publishing(combined: Combined) -> str:
    """One line: under which licence a layer made from this may be published, or why not."""
    if combined.publishable:
        return f"Published as a layer of its own, it would be under {combined.licence}."
    return f"It may not be published as a layer of its own: {combined.reason}"


def write_result(frame: pd.DataFrame, path: Path, sources: list[Source], crs_used: str) -> Path:
    """Write ``frame`` (a GeoDataFrame for .geojson/.gpkg) to ``path`` by its suffix."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"landexplorer can write results as {', '.join(FORMATS)}; '{path.name}' is none."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    combined = combine(sources)
    info = {"credits": credits(sources), "licences": combined.to_dict(), "measured_in": crs_used}
    if suffix == ".csv":
        plain = pd.DataFrame(frame).copy()
        if isinstance(frame, gpd.GeoDataFrame):
            plain["geometry"] = frame.geometry.to_wkt()
        plain.to_csv(path, index=False)
        path.with_name(path.name + ".credits.txt").write_text(
            "\n".join(
                [
                    "Contains data from:",
                    *credit_lines(sources),
                    "What using it obliges: " + "; ".join(combined.obligations) + ".",
                    obligation_of_publishing(combined),
                    f"Areas and distances measured in {crs_used}.",
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        return path
    if not isinstance(frame, gpd.GeoDataFrame):
        raise InputError(f"This result has no shapes; write it as .csv rather than {suffix}.")
    if suffix in (".geojson", ".json"):
        data = json.loads(frame.to_crs("EPSG:4326").to_json(na="null", drop_id=True, default=str))
        data.update(info)
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        return path
    import pyogrio

    pyogrio.write_dataframe(
        frame,
        path,
        layer=path.stem,
        driver="GPKG",
        layer_metadata={
            "credits": json.dumps(info["credits"]),
            "licences": json.dumps(info["licences"]),
            "measured_in": crs_used,
        },
    )
    return path

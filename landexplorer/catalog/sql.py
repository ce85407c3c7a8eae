"""Safe SQL pieces shared by the stores: identifier quoting and filter compilation.

Identifiers come only from the catalogue (checked against a layer's columns) and are
quoted here; values are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from landexplorer.catalog.base import Filter
from landexplorer.catalog.model import LayerEntry
from landexplorer.errors import InputError

#: The geometry column of a spatial database's version tables (EPSG:4326)
GEOM_COLUMN = "geom"

_COMPARISONS = {"=", "<>", "!=", "<", "<=", ">", ">="}

#: Boolean combinations: ``Filter("", "and"|"or", (f1, f2, ...))`` and ``Filter("", "not", (f,))``.
BOOLEAN_OPS = {"and", "or", "not"}
#: Spatial tests on the geometry column: ``Filter("geometry", "intersects", wkb_bytes)``
#: (EPSG:4326 lon/lat WKB). Each store compiles them with its own ``spatial`` hook.
SPATIAL_OPS = {"intersects"}

#: A store's hook turning (op, WKB) into an SQL condition and its parameters.
SpatialCompiler = Callable[[str, bytes], tuple[str, list[Any]]]


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (table or column name)."""
    if "\x00" in name:
        raise InputError("A column or table name contains a NUL character.")
    return '"' + name.replace('"', '""') + '"'


def compile_filters(
    filters: Iterable[Filter],
    allowed: Sequence[str],
    placeholder: str = "?",
    spatial: SpatialCompiler | None = None,
) -> tuple[list[str], list[Any]]:
    """Turn filters into SQL conditions (joined by AND by the caller) and their parameters.

    ``allowed`` is the layer's catalogued column names; anything else is refused.
    Boolean filters (``and``/``or``/``not``) nest; spatial filters need ``spatial``.
    """
    allowed_set = set(allowed)
    clauses: list[str] = []
    params: list[Any] = []
    for f in filters:
        op = f.op.lower()
        if op in BOOLEAN_OPS:
            parts: list[str] = []
            for child in f.value:
                sub, sub_params = compile_filters([child], allowed, placeholder, spatial)
                parts.append(sub[0])
                params.extend(sub_params)
            if op == "not":
                clauses.append(f"(NOT {parts[0]})")
            else:
                clauses.append("(" + f" {op.upper()} ".join(parts) + ")" if parts else "1 = 1")
            continue
        if op in SPATIAL_OPS:
            if spatial is None:
                raise InputError("Spatial filters are not available for this catalogue.")
            clause, spatial_params = spatial(op, f.value)
            clauses.append(clause)
            params.extend(spatial_params)
            continue
        if f.column not in allowed_set:
            raise InputError(
                f"This layer has no column called '{f.column}'. "
                f"Its columns are: {', '.join(sorted(allowed_set)) or 'none'}."
            )
        col = quote_ident(f.column)
        if op in _COMPARISONS:
            clauses.append(f"{col} {'<>' if op == '!=' else op} {placeholder}")
            params.append(f.value)
        elif op == "like":
            clauses.append(f"{col} LIKE {placeholder}")
            params.append(f.value)
        elif op == "in":
            values = list(f.value)
            if not values:
                clauses.append("0 = 1")
                continue
            clauses.append(f"{col} IN ({', '.join([placeholder] * len(values))})")
            params.extend(values)
        elif op == "between":
            low, high = f.value
            clauses.append(f"{col} BETWEEN {placeholder} AND {placeholder}")
            params.extend([low, high])
        elif op == "isnull":
            clauses.append(f"{col} IS NULL")
        elif op == "notnull":
            clauses.append(f"{col} IS NOT NULL")
        else:
            raise InputError(f"'{f.op}' is not a comparison landexplorer understands.")
    return clauses, params


#: The catalogue table's columns: searchable copies of an entry's main fields, then the
#: whole entry as JSON (the same in every store).
CATALOG_COLUMNS = (
    "id", "title", "kind", "data_type", "visibility", "licence", "attribution", "version",
    "feature_count", "storage", "updated", "entry",
)  # fmt: skip


def catalog_upsert(table: str, placeholder: str) -> str:
    """``INSERT ... ON CONFLICT (id) DO UPDATE`` of one catalogue row (SQLite and PostgreSQL)."""
    names = ", ".join(CATALOG_COLUMNS)
    marks = ", ".join([placeholder] * len(CATALOG_COLUMNS))
    updates = ", ".join(f"{c}=excluded.{c}" for c in CATALOG_COLUMNS if c != "id")
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}"
    )


def catalog_values(entry: LayerEntry) -> tuple[Any, ...]:
    """The row's values but the last (the entry as JSON, which each store wraps its own way)."""
    return (
        entry.id, entry.title, entry.kind, entry.data_type, entry.visibility, entry.licence,
        entry.attribution, entry.version, entry.feature_count, entry.storage, entry.updated,
    )  # fmt: skip

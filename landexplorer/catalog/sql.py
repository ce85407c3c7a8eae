"""Safe SQL pieces shared by the stores: identifier quoting and filter compilation.

Identifiers come only from the catalogue (checked against a layer's columns) and are
quoted here; values are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from landexplorer.catalog.base import Filter
from landexplorer.errors import InputError

_COMPARISONS = {"=", "<>", "!=", "<", "<=", ">", ">="}


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (table or column name)."""
    if "\x00" in name:
        raise InputError("A column or table name contains a NUL character.")
    return '"' + name.replace('"', '""') + '"'


def compile_filters(
    filters: Iterable[Filter], allowed: Sequence[str], placeholder: str = "?"
) -> tuple[list[str], list[Any]]:
    """Turn filters into SQL conditions (joined by AND by the caller) and their parameters.

    ``allowed`` is the layer's catalogued column names; anything else is refused.
    """
    allowed_set = set(allowed)
    clauses: list[str] = []
    params: list[Any] = []
    for f in filters:
        if f.column not in allowed_set:
            raise InputError(
                f"This layer has no column called '{f.column}'. "
                f"Its columns are: {', '.join(sorted(allowed_set)) or 'none'}."
            )
        col = quote_ident(f.column)
        op = f.op.lower()
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

"""The catalogue's column types and their Arrow types, shared by every store.

Both stores return a column of a given catalogue type with the same Arrow type, so an
answer does not depend on where the layer is kept.
"""

from __future__ import annotations

import pyarrow as pa

_ARROW_TO_COLUMN = (
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_integer, "integer"),
    (pa.types.is_floating, "number"),
    (pa.types.is_decimal, "number"),
    (pa.types.is_timestamp, "datetime"),
    (pa.types.is_date, "date"),
    (pa.types.is_binary, "binary"),
    (pa.types.is_large_binary, "binary"),
)

#: The Arrow type a store returns for each catalogue column type
COLUMN_TO_ARROW: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "string": pa.string(),
    "date": pa.string(),
    "datetime": pa.string(),
    "binary": pa.binary(),
}


def column_type(arrow_type: pa.DataType) -> str:
    """The catalogue's name for an Arrow type."""
    for test, name in _ARROW_TO_COLUMN:
        if test(arrow_type):
            return name
    return "string"

"""Write one staged feature table into the catalogue GeoPackage, in a process of its own.

``GeoPackageStore`` runs this file as a child process for every new layer version. The
reason is SQLite's locks: they are POSIX record locks, which belong to a *process*, so
GDAL's copy of SQLite and Python's ``sqlite3`` inside one process do not see each other
(``gate``). Written from the server's own process, a big layer had to hold the file's
in-process write gate for the whole write, and every read of the catalogue in that
process waited on it. Written from here, the two libraries sit in different processes,
SQLite keeps them apart correctly, and (the catalogue being in WAL mode) the server's
readers go on reading the versions already there while this process writes.

The protocol, over the child's standard streams:

* argv[1] is a JSON object: ``path``, ``table``, ``geometry_type``, ``geometry`` (the
  Arrow column holding WKB), ``layer_options`` and ``config`` (GDAL options);
* stdin carries an Arrow IPC stream of the layer's record batches, then the bytes
  ``DONE``. A stream that ends without them (the parent failed or was killed) is an
  aborted write: this process raises, exits non-zero, and the parent (or, after a crash,
  the next clean-up) removes the staged table. So a parent that dies never leaves a
  child writing on: its closed pipe ends the write;
* stdout gets one JSON line at the end: ``{"ok": true}`` or ``{"error": "..."}``.

Batches are read and handed to GDAL one at a time, so memory stays flat whatever the
layer's size. This file imports nothing of landexplorer, so the child starts quickly.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

#: What the parent writes after the Arrow stream when every batch was sent.
DONE = b"DONE"


class Aborted(Exception):
    """The parent stopped sending before the end (it failed, or was killed)."""


def _batches(source: BinaryIO) -> tuple[Any, Iterator[Any]]:
    import pyarrow as pa

    reader = pa.ipc.open_stream(source)

    def gen() -> Iterator[Any]:
        try:
            yield from reader
        except pa.ArrowInvalid as exc:  # cut short mid-batch
            raise Aborted(f"the layer's data stopped mid-batch: {exc}") from exc
        tail = source.read(len(DONE) + 1)
        if tail != DONE:
            raise Aborted("the layer's data stopped before its end")

    return reader.schema, gen()


def write(spec: dict[str, Any], source: BinaryIO) -> None:
    import pyarrow as pa
    import pyogrio

    pyogrio.set_gdal_config_options(spec.get("config") or {})
    schema, batches = _batches(source)
    pyogrio.write_arrow(
        pa.RecordBatchReader.from_batches(schema, batches),
        spec["path"],
        layer=spec["table"],
        driver="GPKG",
        geometry_name=spec["geometry"],
        geometry_type=spec["geometry_type"],
        crs="EPSG:4326",
        layer_options=spec["layer_options"],
        append=False,
    )


def main() -> int:
    try:
        write(json.loads(sys.argv[1]), sys.stdin.buffer)
    except BaseException as exc:  # reported to the parent, which words it for people
        errno = getattr(exc, "errno", None)
        sys.stdout.write(json.dumps({"error": repr(exc), "errno": errno}) + "\n")
        sys.stdout.flush()
        return 1
    sys.stdout.write(json.dumps({"ok": True}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

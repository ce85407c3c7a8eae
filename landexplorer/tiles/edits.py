"""Which cached vector tiles a layer's feature edits touched.

A feature edit (``catalog.editing``) changes one feature, not the layer's table, so it
should not throw away every cached tile of the layer. The tile cache's generation follows
the layer's *table* (a replace from a file); on top of it, each tile's key carries the
id of the latest edit whose feature, before or after the change, reaches into the tile
(its bounds widened by twice the drawing buffer), at every zoom. A tile no edit reached
keeps its key, its cached bytes and its ETag; a touched tile gets a new key, so it is
drawn again, in every worker process: each one reads the layer's new history rows when
it sees the layer's version move (one query per edit per process), and nothing needs
telling.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import shapely

from landexplorer.catalog import history as hist
from landexplorer.catalog.base import Store
from landexplorer.catalog.model import LayerEntry
from landexplorer.tiles import grid

#: Tile units (of 4096) the bounds of a tile are widened by: twice the drawing buffer.
_REACH = 512
_EXTENT = 4096


@dataclass
class _Edits:
    """The edits of one layer's current table, as boxes with their change ids."""

    table: tuple[str, str]  # (storage, created): a replace or a new layer starts afresh
    version: int  # the layer version the rows were read at
    last_id: int = 0
    ids: list[int] = field(default_factory=list)
    boxes: list[shapely.Geometry] = field(default_factory=list)
    tree: shapely.STRtree | None = None


class EditIndex:
    """Per process: the edits of each layer since its table was written."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._layers: dict[str, _Edits] = {}
        self._lock = threading.Lock()

    def revision(self, entry: LayerEntry, z: int, x: int, y: int) -> int:
        """The id of the latest edit that reaches into tile z/x/y (0: none)."""
        edits = self._current(entry)
        if edits.tree is None:
            return 0
        area = shapely.box(*grid.buffered_bounds_lonlat(z, x, y, _REACH, _EXTENT))
        hits = edits.tree.query(area)
        if len(hits) == 0:
            return 0
        return int(np.asarray(edits.ids)[hits].max())

    def latest(self, entry: LayerEntry) -> int:
        """The id of the layer's latest feature edit since its table was written (0: none)."""
        edits = self._current(entry)
        return max(edits.ids) if edits.ids else 0

    def _current(self, entry: LayerEntry) -> _Edits:
        table = (entry.storage, entry.created)
        known = self._layers.get(entry.id)
        if known is not None and known.table == table and known.version == entry.version:
            return known
        with self._lock:
            known = self._layers.get(entry.id)
            if known is None or known.table != table:
                known = _Edits(table, -1)
            if known.version != entry.version:
                self._read(entry, known)
            self._layers[entry.id] = known
        return known

    def _read(self, entry: LayerEntry, edits: _Edits) -> None:
        born = hist.parse_time(entry.created) if entry.created else None
        rows = self.store.history(entry.id, after=edits.last_id, limit=1_000_000, since=born)
        added = False
        for change in rows:
            edits.last_id = max(edits.last_id, change.id)
            if change.feature_id is None:  # a replace: only edits after it are of this table
                edits.ids, edits.boxes, added = [], [], True
                continue
            for state in (change.before, change.after):
                if state is not None:
                    edits.ids.append(change.id)
                    edits.boxes.append(shapely.box(*shapely.from_wkb(state.wkb).bounds))
                    added = True
        if added:
            edits.tree = shapely.STRtree(edits.boxes) if edits.boxes else None
        edits.version = entry.version

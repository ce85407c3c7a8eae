"""Point-in-polygon counts agree with a plain STRtree join, boundaries and duplicates included."""

from __future__ import annotations

import numpy as np
import shapely

from landexplorer.analysis.counts import count_points_arrays, point_pairs


def _reference(polys, points, predicate):
    i, j = shapely.STRtree(points).query(polys, predicate=predicate)
    order = np.lexsort((j, i))
    return i[order], j[order]


def test_grid_join_matches_strtree_on_random_data():
    rng = np.random.default_rng(7)
    centres = rng.uniform(0, 1000, size=(300, 2))
    polys = shapely.buffer(shapely.points(centres), rng.uniform(1, 60, 300), quad_segs=3)
    polys[::7] = shapely.box(
        centres[::7, 0], centres[::7, 1], centres[::7, 0] + 40, centres[::7, 1] + 25
    )
    pts = rng.uniform(-50, 1050, size=(20_000, 2))
    # points exactly on box edges and corners
    edge = np.column_stack([centres[::7, 0] + 40, centres[::7, 1] + 10])
    corner = np.column_stack([centres[::7, 0], centres[::7, 1]])
    pts = np.vstack([pts, edge, corner, pts[:50]])  # duplicates too
    points = shapely.points(pts)
    for predicate in ("intersects", "contains"):
        i, j = point_pairs(polys, points, predicate)
        order = np.lexsort((j, i))
        ri, rj = _reference(polys, points, predicate)
        assert np.array_equal(i[order], ri) and np.array_equal(j[order], rj)
    counts = count_points_arrays(polys, points)
    assert counts.sum() == len(_reference(polys, points, "intersects")[0])


def test_falls_back_for_multipoints_and_handles_empty_inputs():
    polys = np.array([shapely.box(0, 0, 10, 10), shapely.box(20, 20, 30, 30)])
    points = np.array([shapely.MultiPoint([(1, 1), (25, 25)]), shapely.Point(5, 5)])
    assert count_points_arrays(polys, points).tolist() == [2, 1]
    assert count_points_arrays(polys, np.array([], dtype=object)).tolist() == [0, 0]
    assert count_points_arrays(np.array([], dtype=object), points).tolist() == []
    one = np.array([shapely.Point(5, 5)])  # a single point: zero-size grid
    assert count_points_arrays(polys, one).tolist() == [1, 0]

"""Weighted statistics of cell values per zone: the arithmetic behind zonal statistics.

Each cell value comes with the zone it belongs to and a weight (its covered fraction, or
1 for cell-centre membership). Weighted count, sum, mean, std, min, max, majority,
minority, unique and coverage-weighted quantiles, all vectorised over zones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def is_percentile(name: str) -> bool:
    """``p10``, ``p90``, ``p99.5`` ..."""
    return (
        name.startswith("p")
        and name[1:].replace(".", "", 1).isdigit()
        and 0 <= float(name[1:]) <= 100
    )


def statistics(
    n: int, zi: np.ndarray, v: np.ndarray, w: np.ndarray, stats: Sequence[str]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    wsum = np.bincount(zi, weights=w, minlength=n)
    vsum = np.bincount(zi, weights=w * v, minlength=n)
    has = wsum > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(has, vsum / wsum, np.nan)
    needs_order = any(
        s in ("min", "max", "median", "majority", "minority", "unique") or is_percentile(s)
        for s in stats
    )
    frame = pd.DataFrame({"z": zi, "v": v, "w": w}) if needs_order else None
    for s in stats:
        if s == "count":
            out[s] = wsum
        elif s == "cells":
            out[s] = np.bincount(zi, minlength=n).astype(float)
        elif s == "sum":
            out[s] = vsum
        elif s == "mean":
            out[s] = mean
        elif s == "std":
            dev = np.bincount(zi, weights=w * (v - mean[zi]) ** 2, minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[s] = np.where(has, np.sqrt(dev / wsum), np.nan)
        elif s in ("min", "max"):
            assert frame is not None
            agg = frame.groupby("z")["v"].agg(s)
            out[s] = agg.reindex(range(n)).to_numpy(dtype=float)
        elif s == "unique":
            assert frame is not None
            agg = frame.groupby("z")["v"].nunique()
            out[s] = agg.reindex(range(n), fill_value=0).to_numpy(dtype=float)
        elif s in ("majority", "minority"):
            assert frame is not None
            weight_of = frame.groupby(["z", "v"])["w"].sum().reset_index()
            pick = weight_of.sort_values(["z", "w", "v"], ascending=[True, s == "minority", True])
            first = pick.drop_duplicates("z")
            out[s] = first.set_index("z")["v"].reindex(range(n)).to_numpy(dtype=float)
        else:  # median / percentiles, coverage-weighted
            assert frame is not None
            q = 50.0 if s == "median" else float(s[1:])
            out[s] = _weighted_quantile(frame, n, q / 100.0)
    return out


def _weighted_quantile(frame: pd.DataFrame, n: int, q: float) -> np.ndarray:
    """The smallest value whose cumulative weight reaches ``q`` of the zone's weight."""
    ordered = frame.sort_values(["z", "v"], kind="stable")
    z = ordered["z"].to_numpy()
    w = ordered["w"].to_numpy()
    v = ordered["v"].to_numpy()
    cum = np.cumsum(w)
    starts = np.r_[0, np.flatnonzero(np.diff(z)) + 1]
    base = np.repeat(np.r_[0.0, cum[starts[1:] - 1]], np.diff(np.r_[starts, len(z)]))
    local = cum - base
    total = np.bincount(z, weights=w, minlength=n)[z]
    reached = local >= q * total - 1e-12
    hit = pd.DataFrame({"z": z[reached], "v": v[reached]}).drop_duplicates("z")
    out = np.full(n, np.nan)
    out[hit["z"].to_numpy()] = hit["v"].to_numpy()
    return out

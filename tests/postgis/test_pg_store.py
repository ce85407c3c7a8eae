"""PostGIS-only behaviour: schema migrations, what is left in the database after a failed
or interrupted write, GiST indexes, and the binary COPY encoder against PostgreSQL's own."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
import shapely

from landexplorer import budget
from landexplorer.catalog import LayerEntry, Query
from landexplorer.catalog.postgis import MIGRATIONS, PostGISStore, _pipelined
from landexplorer.errors import LandExplorerError, TimeBudgetExceeded
from landexplorer.layers.ingest import IngestOptions, ingest

TREES = ("highways_trees", "trafford_highways_trees.csv")


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}


def test_migrations_apply_once(pg_store: PostGISStore, pg_url: str, tmp_path: Path) -> None:
    assert pg_store.schema_version() == max(v for v, _, _ in MIGRATIONS)
    again = PostGISStore(pg_url, tmp_path / "rasters")
    assert again.migrate() == []  # nothing left to apply
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version FROM landexplorer_migrations").fetchall()
    assert [r[0] for r in rows] == [v for v, _, _ in MIGRATIONS]
    again.close()


def test_version_table_has_key_and_gist_index(
    pg_store: PostGISStore, pg_url: str, real_data: Path
) -> None:
    ingest(pg_store, real_data.joinpath(*TREES), IngestOptions(id="trees"))
    with psycopg.connect(pg_url) as conn:
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'trees_v1'"
        ).fetchall()
        srid = conn.execute("SELECT Find_SRID('public', 'trees_v1', 'geom')").fetchone()
    defs = " ".join(r[0] for r in indexes)
    assert "USING gist (geom)" in defs
    assert "(fid)" in defs
    assert srid == (4326,)


@pytest.mark.parametrize("error", [RuntimeError("disk trouble"), KeyboardInterrupt()])
def test_interrupted_write_leaves_nothing(
    pg_store: PostGISStore, pg_url: str, error: BaseException
) -> None:
    before = _tables(pg_url)
    schema = pa.schema([("name", pa.string()), ("geometry", pa.binary())])
    point = shapely.to_wkb(shapely.Point(-2.3, 53.4))

    def batches():  # type: ignore[no-untyped-def]
        yield pa.record_batch([pa.array(["a"]), pa.array([point], pa.binary())], schema=schema)
        raise error

    with pytest.raises(type(error)):
        pg_store.write_vector(LayerEntry(id="broken", title="Broken"), schema, batches())
    assert not pg_store.exists("broken")
    assert _tables(pg_url) == before
    # the store still works on the same thread afterwards
    pg_store.write_vector(
        LayerEntry(id="fine", title="Fine"),
        schema,
        [pa.record_batch([pa.array(["b"]), pa.array([point], pa.binary())], schema=schema)],
    )
    assert pg_store.exact_count("fine") == 1


def test_types_round_trip_through_binary_copy(pg_store: PostGISStore, pg_url: str) -> None:
    """Every attribute type the ingestion can produce, NULLs included, checked against
    what PostgreSQL itself says is in the table."""
    when = dt.datetime(2024, 5, 1, 10, 30, 15, 250000, tzinfo=dt.UTC)
    columns = {
        "i8": pa.array([1, None, -(2**62)], pa.int64()),
        "i32": pa.array([7, 8, None], pa.int32()),
        "f": pa.array([1.5, None, -0.0], pa.float64()),
        "b": pa.array([True, False, None]),
        "s": pa.array(['Åsa\'s "plot"', None, ""], pa.string()),
        "d": pa.array([dt.date(2018, 3, 28), None, dt.date(1970, 1, 1)], pa.date32()),
        "ts": pa.array([when, None, when], pa.timestamp("ms", tz="UTC")),
        "naive": pa.array([when.replace(tzinfo=None), None, None], pa.timestamp("us")),
        "raw": pa.array([b"\x00\x01", None, b""], pa.binary()),
    }
    geoms = [shapely.Point(-2.3, 53.4), shapely.Point(0, 0), shapely.box(0, 0, 1, 1)]
    columns["geometry"] = pa.array(shapely.to_wkb(geoms), pa.binary())
    batch = pa.record_batch(list(columns.values()), names=list(columns))
    pg_store.write_vector(LayerEntry(id="types", title="Types"), batch.schema, [batch])
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT fid, i8, i32, f, b, s, d, ts, naive, raw, ST_AsText(geom), ST_SRID(geom) "
            "FROM types_v1 ORDER BY fid"
        ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3]
    assert [r[1] for r in rows] == [1, None, -(2**62)]
    assert [r[2] for r in rows] == [7, 8, None]
    assert [r[3] for r in rows] == [1.5, None, -0.0]
    assert [r[4] for r in rows] == [True, False, None]
    assert [r[5] for r in rows] == ['Åsa\'s "plot"', None, ""]
    assert [r[6] for r in rows] == [dt.date(2018, 3, 28), None, dt.date(1970, 1, 1)]
    assert rows[0][7] == when and rows[1][7] is None
    assert rows[0][8] == when.replace(tzinfo=None)
    assert [r[9] for r in rows] == [b"\x00\x01", None, b""]
    assert list(shapely.from_wkt([r[10] for r in rows])) == geoms
    assert {r[11] for r in rows} == {4326}
    # and the store reads them back the way the GeoPackage store would
    table = pg_store.read_arrow("types", Query(fids=[1]))
    assert table.column("d").to_pylist() == ["2018-03-28"]
    assert table.column("ts").to_pylist() == ["2024-05-01T10:30:15.250Z"]


def test_unreachable_database_is_a_plain_error(tmp_path: Path) -> None:
    with pytest.raises(LandExplorerError) as info:
        PostGISStore("postgresql://nobody:secret@127.0.0.1:1/none", tmp_path)
    assert "cannot be reached" in info.value.public
    # what PostgreSQL (here libpq: nothing listens on port 1) said, without the URL
    assert "PostgreSQL said: " in info.value.public and "refused" in info.value.public
    assert "secret" not in info.value.public and "127.0.0.1" not in info.value.public
    assert "secret" not in (info.value.detail or "")


def test_a_query_stopped_by_the_time_budget_is_the_budget_error(pg_store: PostGISStore) -> None:
    """PostgreSQL stops a query at the end of the request's budget (statement_timeout); that
    is the budget's plain error every time, never the driver's QueryCanceled (a 500), even
    when the timeout, counted in whole milliseconds, lands just before the deadline."""
    for k in range(12):
        # budgets with a fraction of a millisecond: where rounding down fired early
        with budget.limit(0.0302 + 0.0007 * k), pytest.raises(TimeBudgetExceeded):
            pg_store._fetch("SELECT pg_sleep(5)")
    assert pg_store._fetch("SELECT 1") == [(1,)]  # the connection went back to the pool usable


def test_a_budgeted_query_leaves_its_connection_as_it_found_it(pg_store: PostGISStore) -> None:
    """A query within a budget runs in a transaction of its own (sent in one round trip);
    answered or stopped, its timeout ends with it: the pooled connection goes back idle,
    and a query without a budget afterwards runs without a timeout."""
    with budget.limit(5.0):
        assert pg_store._fetch("SELECT %s::int + 1", [41]) == [(42,)]
        assert pg_store._fetch("SELECT 'x'::bytea", binary=True) == [(b"x",)]
    with budget.limit(0.05), pytest.raises(TimeBudgetExceeded):
        pg_store._fetch("SELECT pg_sleep(5)")
    with budget.limit(5.0), pytest.raises(psycopg.errors.DivisionByZero):
        pg_store._fetch("SELECT 1 / 0")
    with pg_store._connection() as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert pg_store._fetch("SHOW statement_timeout") == [("0",)]
    assert pg_store._fetch("SELECT 1 FROM pg_sleep(0.2)") == [(1,)]


def test_a_budgeted_query_inside_an_open_transaction_keeps_it(pg_store: PostGISStore) -> None:
    """Inside a transaction already open, the budgeted query takes a savepoint of it: the
    transaction's own work is neither committed early nor lost."""
    with pg_store.transaction() as conn:
        conn.execute("CREATE TEMP TABLE budget_probe (v int) ON COMMIT DROP")
        conn.execute("INSERT INTO budget_probe VALUES (7)")
        with budget.limit(5.0):
            assert pg_store._fetch("SELECT v FROM budget_probe") == [(7,)]
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("SELECT count(*) FROM budget_probe").fetchone() == (1,)


def test_a_failed_pipelined_query_rolls_its_transaction_back(pg_url: str) -> None:
    """On a bare connection (no pool to reset it), a query that fails in the pipeline leaves
    the connection idle, its timeout gone, and usable for the next query."""
    with psycopg.connect(pg_url) as conn:
        with conn.cursor() as cur, pytest.raises(psycopg.errors.DivisionByZero):
            _pipelined(conn, cur, "SELECT 1 / %s", [0], ["5000ms"])
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with conn.cursor() as cur:
            _pipelined(conn, cur, "SELECT current_setting('statement_timeout')", [], ["1234ms"])
            assert cur.fetchall() == [("1234ms",)]
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)

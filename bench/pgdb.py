"""A fresh PostGIS database for a benchmark: in the harness's cluster when it runs (port
``PG_PORT``), else in a throw-away cluster started here and stopped with ``stack``."""

from __future__ import annotations

from contextlib import ExitStack

from common import PG_PORT, log


def fresh_database(stack: ExitStack, name: str) -> str:
    import psycopg

    try:
        admin = f"postgresql://postgres@127.0.0.1:{PG_PORT}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        url = f"postgresql://postgres@127.0.0.1:{PG_PORT}/{name}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        log(f"PostGIS: database {name} in the harness's cluster (port {PG_PORT})")
        return url
    except psycopg.OperationalError:
        from tests.pg import PgCluster, find_pg_bin

        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL here: run the harness's pg_cluster.sh") from None
        cluster = PgCluster(bin_dir)
        cluster.start()
        stack.callback(cluster.stop)
        log(f"PostGIS: a throw-away cluster on port {cluster.port}")
        return cluster.new_database(name)

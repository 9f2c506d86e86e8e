"""Small PostgreSQL/PostGIS helpers for the benchmarks (psycopg 3, no ORM)."""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def ensure_database(dsn: str) -> None:
    """Create the DSN's database if it does not exist (connecting to ``postgres`` first)."""
    params = conninfo_to_dict(dsn)
    name = params.get("dbname") or "postgres"
    admin = make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def connect(dsn: str) -> psycopg.Connection:
    """An autocommit connection with PostGIS available in the database."""
    ensure_database(dsn)
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return conn


def load_sectors(conn: psycopg.Connection, table: str, features: Iterable[dict]) -> int:
    """(Re)create ``table(code text, geom geometry(MultiPolygon,4326))`` with a GiST index."""
    t = sql.Identifier(table)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
    conn.execute(
        sql.SQL("CREATE TABLE {} (code text NOT NULL, geom geometry(MultiPolygon, 4326) NOT NULL)").format(t)
    )
    n = 0
    for f in features:
        insert = "INSERT INTO {} VALUES (%s, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326)))"
        conn.execute(sql.SQL(insert).format(t), (f["properties"]["code"], json.dumps(f["geometry"])))
        n += 1
    conn.execute(sql.SQL("CREATE INDEX ON {} USING gist (geom)").format(t))
    conn.execute(sql.SQL("ANALYZE {}").format(t))
    return n


def copy_points(conn: psycopg.Connection, table: str, xs: np.ndarray, ys: np.ndarray) -> None:
    """(Re)create the UNLOGGED ``table(id int, geom geometry(Point,4326))`` from arrays, ids 0..n-1.

    Coordinates travel as shortest round-trip decimal text (``repr``), which
    PostgreSQL parses back to the very same doubles.
    """
    t = sql.Identifier(table)
    raw = sql.Identifier(table + "_raw")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(t, raw))
    conn.execute(sql.SQL("CREATE UNLOGGED TABLE {} (id int, lon float8, lat float8)").format(raw))
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} (id, lon, lat) FROM STDIN").format(raw)) as copy:
        step = 100_000
        for lo in range(0, xs.size, step):
            ids = range(lo, min(lo + step, xs.size))
            chunk = zip(ids, xs[lo : lo + step].tolist(), ys[lo : lo + step].tolist(), strict=True)
            copy.write("".join(f"{i}\t{x!r}\t{y!r}\n" for i, x, y in chunk))
    build = (
        "CREATE UNLOGGED TABLE {} AS"
        " SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geometry(Point, 4326) AS geom FROM {}"
    )
    conn.execute(sql.SQL(build).format(t, raw))
    conn.execute(sql.SQL("DROP TABLE {}").format(raw))
    conn.execute(sql.SQL("ANALYZE {}").format(t))


def fetch_codes(conn: psycopg.Connection, query: str, n: int) -> np.ndarray:
    """Run ``query`` returning ``(id, code)`` rows; an object array of codes by id (None where absent)."""
    out = np.full(n, None, dtype=object)
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT") as copy:
        buf = "".join(bytes(block).decode() for block in copy)
    for line in buf.splitlines():
        i, code = line.split("\t")
        out[int(i)] = None if code == "\\N" else code
    return out

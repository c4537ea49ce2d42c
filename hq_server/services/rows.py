"""Statements run on the driver's connection (SQLAlchemy's layer would double their client
CPU): those of the push path and each request's, rows as JSON for ``json_populate_recordset``,
arrays sent in binary; and the transaction-scoped locks that order the writers."""

from __future__ import annotations

from decimal import Decimal

import orjson
from psycopg.pq import ExecStatus

TUPLES_OK = ExecStatus.TUPLES_OK


def _default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(rows: list[dict]) -> str:
    """Return rows as a compact JSON array (UUIDs, decimals, times as text)."""
    return orjson.dumps(rows, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


def execute_plain(conn, sql: str, params: dict | None = None, *, prepare=None) -> list[tuple]:
    """Run ``sql`` (psycopg placeholders) on a SQLAlchemy connection's driver; return its rows.

    For the few fixed statements every push runs: psycopg prepares one once it has run
    a few times on a connection. Half the client CPU of the same statement through
    SQLAlchemy, which a push of one event feels. The transaction is begun where
    SQLAlchemy sees it: one the driver began alone would not be covered by its commit.
    """
    if not conn.in_transaction():
        conn.begin()
    with conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql, params, prepare=prepare)
        # The result's status, not ``cur.description``: that builds a column object per column.
        result = cur.pgresult
        return cur.fetchall() if result is not None and result.status == TUPLES_OK else []


def execute_binary(conn, sql: str, params: dict) -> list[tuple]:
    """``execute_plain`` for statements with ``%(name)b`` arrays, never prepared.

    Arrays of ids go in binary: psycopg's text arrays quote every element with a regular
    expression, a measurable part of a 500-event push. The statement is planned for the
    ids at hand each time: a generic plan for ``id = ANY($1)`` fixed while a table was
    nearly empty (a new deployment, an emptied table) kept scanning the whole table as it
    grew.
    """
    return execute_plain(conn, sql, params, prepare=False)


def hold_lock(conn, name: str) -> None:
    """Wait for the advisory lock ``name`` and hold it to the end of the transaction."""
    execute_plain(conn, "SELECT pg_advisory_xact_lock(hashtext(%(k)s))", {"k": name})

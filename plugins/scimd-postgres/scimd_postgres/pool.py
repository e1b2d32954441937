"""What the backend's and the state store's connection pools share."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]

__all__ = ["reset_plain"]


async def reset_plain(conn: asyncpg.Connection) -> None:
    """Reset of a pool connection on release. asyncpg's default sends
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` every time (a round
    trip, ~0.1 ms per request). The pools' connections never change session state: their
    statements are autocommit reads and transactions (``SET LOCAL`` and transaction-level
    advisory locks at most); whatever sets a session setting, takes a session advisory
    lock, LISTENs or holds a cursor (migrations, bulk imports) runs on a connection of
    its own. So only a transaction left open (never expected) is undone."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")

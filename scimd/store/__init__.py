"""The embedded resource store (SQLite), a builtin ``scimd_backends`` plugin."""

from __future__ import annotations

from scimd.store.plugin import EmbeddedFactory
from scimd.store.sqlite import SCHEMA_VERSION, SQLiteBackend, etag_matches

__all__ = ["SCHEMA_VERSION", "EmbeddedFactory", "SQLiteBackend", "etag_matches"]

"""PostgreSQL storage backend for scimd (``storage.backend = "postgres"``)."""

__version__ = "0.1.0"

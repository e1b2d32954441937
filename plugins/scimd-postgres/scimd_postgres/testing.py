"""A throwaway PostgreSQL cluster for tests (this plugin's and, later, scimd's HTTP suite).

``PostgresCluster`` runs ``initdb`` in a temporary directory (as the ``postgres`` user when
the tests run as root, since initdb refuses root), starts the server on a free loopback
port with durability off (``fsync``, ``synchronous_commit``, ``full_page_writes``), its unix
socket inside the temporary directory, and removes everything on ``stop()``.

``postgres_cluster`` is a session-scoped pytest fixture built on it: import it into a
``conftest.py`` (``from scimd_postgres.testing import postgres_cluster``). When the
binaries are missing it fails when ``CI=true`` (a missing service in CI is a failure) and
otherwise skips with a reason naming what is missing (listed by ``pytest -ra``).

Binaries are looked up in ``$SCIMD_PG_BINDIR``, then ``pg_config --bindir``, then
``/usr/lib/postgresql/*/bin``.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ClusterUnavailable", "PostgresCluster", "find_bindir", "postgres_cluster"]


class ClusterUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (or the cluster cannot start)."""


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``psql``."""
    candidates: list[str] = []
    env = os.environ.get("SCIMD_PG_BINDIR")
    if env:
        candidates.append(env)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(  # noqa: S603
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(out.stdout.strip())
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
    for candidate in candidates:
        path = Path(candidate)
        if all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "psql")):
            return path
    raise ClusterUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, psql) not found; install PostgreSQL or "
        "set SCIMD_PG_BINDIR (looked in: " + (", ".join(candidates) or "nothing") + ")"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresCluster:
    """One throwaway cluster: ``start()``, ``create_database()`` per test, ``stop()``."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.root: Path | None = None
        self.port = 0
        self._as_postgres = os.geteuid() == 0
        self._counter = itertools.count(1)
        self._options = ""

    # -- lifecycle

    def _run_server_tool(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(  # noqa: S603
            cmd, capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise ClusterUnavailable(
                f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}"
            )

    def start(self) -> None:
        root = Path(tempfile.mkdtemp(prefix="scimd-pg-"))
        self.root = root
        if self._as_postgres:
            shutil.chown(root, user="postgres", group="postgres")
        data = root / "data"
        self.port = _free_port()
        try:
            self._run_server_tool(
                "initdb",
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            self._options = " ".join(
                [
                    f"-c port={self.port}",
                    "-c listen_addresses=127.0.0.1",
                    f"-c unix_socket_directories={root}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=200",
                ]
            )
            self.resume()
        except BaseException:
            self._remove()
            raise

    def pause(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``: sessions are ended), keeping its data;
        ``resume()`` starts it again on the same port (outage tests)."""
        assert self.root is not None
        self._run_server_tool("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the (initialised) server and wait until it accepts connections."""
        assert self.root is not None
        self._run_server_tool(
            "pg_ctl",
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "server.log"),
            "-o",
            self._options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        if self.root is None:
            return
        with contextlib.suppress(ClusterUnavailable, subprocess.SubprocessError):
            self._run_server_tool(
                "pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"
            )
        self._remove()

    def _remove(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    # -- databases

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql (as the superuser ``postgres``); returns its stdout."""
        proc = subprocess.run(  # noqa: S603
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise ClusterUnavailable(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, prefix: str = "scimd_test", *, template: str = "template0") -> str:
        """A new database, a copy of ``template`` (empty by default); returns its DSN."""
        name = f"{prefix}_{os.getpid()}_{next(self._counter)}"
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.dsn(name)


def _cluster_or_report() -> Iterator[PostgresCluster]:
    from scimd.testing.services import service_missing

    try:
        cluster = PostgresCluster()
        cluster.start()
    except ClusterUnavailable as exc:
        service_missing(f"PostgreSQL not available: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def _make_fixture() -> object:
    import pytest

    @pytest.fixture(scope="session")
    def postgres_cluster() -> Iterator[PostgresCluster]:
        """A throwaway PostgreSQL cluster for the whole test session."""
        yield from _cluster_or_report()

    return postgres_cluster


postgres_cluster = _make_fixture()

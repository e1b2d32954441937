"""Real ``scimd serve`` processes (``python -m scimd.cli serve -c FILE``) on one PostgreSQL
database, for the multi-process tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

import orjson

__all__ = ["CONFIG", "ServeProcess", "free_port", "write_config"]

CONFIG = """\
[server]
host = "127.0.0.1"
base_path = "/scim/v2"

[storage]
backend = "postgres"

[storage.postgres]
dsn = { "$env" = "SCIMD_PG_DSN" }
max_pool = 8
command_timeout = "5s"

[state]
backend = "postgres"

[state.postgres]
dsn = { "$env" = "SCIMD_PG_DSN" }
max_pool = 4
command_timeout = "5s"

[auth]
bootstrap_token = false

[logging]
level = "INFO"
format = "json"
access_log = false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path) -> Path:
    path = directory / "scimd.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


class ServeProcess:
    """``scimd serve`` on its own port with ``workers`` worker processes; ``start()``
    returns when every worker logged that it is ready; ``stop()`` ends its process group."""

    def __init__(self, config: Path, dsn: str, *, workers: int = 1) -> None:
        self.config = config
        self.dsn = dsn
        self.workers = workers
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[dict[str, object]] = []
        self._drain: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/scim/v2"

    async def start(self, wait: float = 60) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scimd.cli",
            "serve",
            "-c",
            str(self.config),
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "SCIMD_PG_DSN": self.dsn},
            # Own process group: stop() ends the workers too, whatever happens.
            start_new_session=True,
        )
        assert self.proc.stderr is not None
        ready: set[int] = set()
        async with asyncio.timeout(wait):
            while len(ready) < self.workers:
                raw = await self.proc.stderr.readline()
                assert raw, f"scimd serve exited before it was ready: {self.log}"
                entry = self._entry(raw)
                if "ready on" in str(entry.get("message")):
                    ready.add(int(str(entry.get("pid"))))
        self._drain = asyncio.create_task(self._read_rest())

    def _entry(self, raw: bytes) -> dict[str, object]:
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            entry = {"message": raw.decode(errors="replace")}
        if not isinstance(entry, dict):
            entry = {"message": str(entry)}
        self.log.append(entry)
        return entry

    async def _read_rest(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            self._entry(raw)

    async def stop(self) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                code = await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            code = await proc.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 10)
        self.proc = None
        return code

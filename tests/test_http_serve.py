"""``scimd.app.serve``: several worker processes share the port (SO_REUSEPORT) and stop
gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import orjson

SCRIPT = """
import sys
from pathlib import Path
from scimd.app import serve
from scimd.plugins import PluginManager
from scimd.settings import (
    AuthSettings, LoggingSettings, ServerSettings, Settings, StateSettings, StorageSettings,
)
tmp = Path(sys.argv[1])
settings = Settings(
    server=ServerSettings(host="127.0.0.1", port=int(sys.argv[2]), workers=2),
    storage=StorageSettings(options={"embedded": {"path": str(tmp / "scimd.db")}}),
    state=StateSettings(path=tmp / "state.db"),
    auth=AuthSettings(bootstrap_token=True),
    logging=LoggingSettings(level="INFO", format="json"),
    base_dir=tmp,
)
serve(settings, PluginManager.create(entry_points=False))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_two_workers_share_the_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        str(tmp_path),
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # Own process group: the cleanup below can end the workers too, whatever happens.
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        # The bootstrap token is printed once on stdout, never logged.
        token_line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert "bootstrap token" in token_line
        token = token_line.rsplit(" ", 1)[1].strip()
        ready: set[int] = set()
        log_lines: list[dict[str, object]] = []
        while len(ready) < 2:
            raw = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert raw, "server exited before both workers were ready"
            entry = orjson.loads(raw)
            log_lines.append(entry)
            assert token not in raw.decode()
            if "ready on" in str(entry["message"]):
                ready.add(int(str(entry["pid"])))
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            async with session.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            async with session.get(
                f"{base}/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == 200
                assert (await resp.json(content_type=None))["totalResults"] == 0
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

"""Fixtures: one real upstream scimd process per session (``python -m scimd.cli serve`` on a
free loopback port); every test gets a fresh upstream tenant with its own token, so no test
sees another's data."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from scimd_http.testing import MembersAPI

from scimd.state.sqlite import SqliteStateStore
from scimd.testing.extension import build_contract_registry

__all__ = [
    "MAPPING",
    "Upstream",
    "UpstreamTenant",
    "free_port",
    "members_api",
    "upstream",
    "upstream_tenant",
]

#: The shipped mapping of the members API.
MAPPING = Path(__file__).resolve().parents[3] / "conf" / "rest" / "members-api.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Upstream:
    base_url: str
    config: Path
    state_path: Path
    token: str
    """Made by ``scimd token create`` for tenant ``default``."""


@dataclass(frozen=True)
class UpstreamTenant:
    name: str
    token: str


def _write_config(directory: Path, port: int) -> Path:
    build_contract_registry(directory)  # writes the contract extension schema files
    config = directory / "upstream.toml"
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}

[storage]
backend = "embedded"

[storage.embedded]
path = "upstream.db"

[state]
path = "upstream-state.db"

[schema]
files = ["contract-extension-schema.json"]
resource_types = ["contract-resource-types.json"]

[auth]
bootstrap_token = false

[events]
log = false

[logging]
level = "INFO"
format = "text"
""",
        "utf-8",
    )
    return config


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """A real scimd serving on loopback, started once for the session."""
    directory = tmp_path_factory.mktemp("upstream")
    port = free_port()
    config = _write_config(directory, port)
    made = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "scimd.cli", "token", "create", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = made.stdout.strip().splitlines()[-1]
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "scimd.cli", "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=write_end,
        start_new_session=True,
    )
    os.close(write_end)
    ready = threading.Event()
    lines: list[str] = []

    def drain() -> None:  # keeps the pipe empty; signals readiness
        with open(read_end, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                lines.append(line)
                if "ready on" in line:
                    ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert ready.wait(60) and proc.poll() is None, "upstream scimd did not start:\n" + "".join(
            lines
        )
        yield Upstream(
            base_url=f"http://127.0.0.1:{port}/scim/v2",
            config=config,
            state_path=directory / "upstream-state.db",
            token=token,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest_asyncio.fixture(loop_scope="function")
async def upstream_tenant(upstream: Upstream) -> AsyncIterator[UpstreamTenant]:
    """A new, empty tenant of the upstream and a read/write token for it."""
    store = SqliteStateStore(upstream.state_path)
    await store.start()
    try:
        name = f"gw-{uuid.uuid4().hex[:12]}"
        _record, token = await store.create_token(tenant=name, scopes=("read", "write"))
    finally:
        await store.aclose()
    yield UpstreamTenant(name, token)


@pytest_asyncio.fixture(loop_scope="function")
async def members_api() -> AsyncIterator[MembersAPI]:
    """The fake SaaS members API (``scimd_http.testing``) on a loopback port, paging by
    page number (tests change ``style`` for the other pagination styles)."""
    api = MembersAPI(token="members-token")  # noqa: S106 - fake service
    await api.start()
    try:
        yield api
    finally:
        await api.stop()

"""``scimd.locks.KeyedLocks`` (JIT logins of one subject, one email address, one
resource): work under one key runs one at a time, other keys run meanwhile, and a key's
lock is dropped once nobody holds or waits for it (the table does not grow with every
subject ever seen), also when the work fails."""

from __future__ import annotations

import asyncio

import pytest

from scimd.locks import KeyedLocks


async def test_one_key_serialises_other_keys_run_alongside() -> None:
    locks = KeyedLocks()
    inside: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    both = asyncio.Event()

    async def work(key: str) -> None:
        async with locks.hold(key):
            inside[key] += 1
            most[key] = max(most[key], inside[key])
            if inside["a"] and inside["b"]:
                both.set()
            await asyncio.sleep(0.01)
            inside[key] -= 1

    await asyncio.gather(*(work(k) for k in "aabba"))
    assert most == {"a": 1, "b": 1}  # never two holders of one key
    assert both.is_set()  # a and b held at the same time
    assert len(locks) == 0


async def test_a_failing_holder_releases_and_drops_its_key() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold(("t", "x")):
            assert len(locks) == 1
            raise RuntimeError("boom")
    assert len(locks) == 0
    async with locks.hold(("t", "x")):  # usable again
        pass
    assert len(locks) == 0

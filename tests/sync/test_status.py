"""The registry reads every part's status; the recorder writes changes, throttled."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from m365pbx.core.status import PartState, PartStatus, connection_state, summary
from m365pbx.sync.status import StatusRecorder, StatusRegistry
from m365sim.clock import VirtualClock

START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


class Kept:
    """A sink that keeps what it was given (the store's adapter is tested in tests/e2e)."""

    def __init__(self) -> None:
        self.saves: list[tuple[list[str], list[str]]] = []
        self.fail = False

    async def save(self, statuses: Sequence[PartStatus], *, gone: Sequence[str]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.saves.append(([s.part for s in statuses], list(gone)))


async def test_a_part_without_since_keeps_the_moment_its_state_began() -> None:
    clock = VirtualClock(START)
    registry = StatusRegistry(clock)
    state = {"value": PartState.STARTING}
    registry.add(lambda: [PartStatus("pbx/a", "pbx_connection", state["value"])])
    assert registry.snapshot()[0].since == START
    await clock.advance(300)
    later = clock.now()
    assert registry.snapshot()[0].since == START  # same state: same since
    state["value"] = PartState.ERROR
    assert registry.snapshot()[0].since == later


def test_a_broken_reader_is_a_part_in_error_and_hides_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = StatusRegistry(VirtualClock(START))

    def broken() -> list[PartStatus]:
        raise KeyError("gone")

    registry.add(broken)
    registry.add(lambda: [PartStatus("store", "store", PartState.OK, START)])
    registry.snapshot()
    found = {s.part: s for s in registry.snapshot()}
    assert caplog.text.count("reading the status of broken failed") == 1  # not every time
    assert found["status/broken"].since == START
    assert found["store"].state is PartState.OK
    assert found["status/broken"].state is PartState.ERROR
    assert "KeyError" in (found["status/broken"].error or "")
    assert [s.part for s in registry.not_ok()] == ["status/broken"]


async def test_recorder_writes_changes_only_and_everything_on_refresh() -> None:
    clock = VirtualClock(START)
    registry = StatusRegistry(clock)
    parts = {"store": PartState.OK, "pbx/a": PartState.OK}
    registry.add(lambda: [PartStatus(p, "x", s, START, None if s.is_ok else "down")
                          for p, s in parts.items()])
    sink = Kept()
    recorder = StatusRecorder(registry, sink, clock, node="n1", refresh=60.0)
    assert await recorder.record() == 2  # the first time: everything
    assert await recorder.record() == 0  # nothing changed: nothing written
    parts["pbx/a"] = PartState.ERROR
    assert await recorder.record() == 1
    del parts["store"]
    assert await recorder.record() == 1
    assert sink.saves[-2:] == [(["pbx/a"], []), ([], ["store"])]
    await clock.advance(61)
    assert await recorder.record() == 1  # refreshed: the one part left, written again


async def test_a_failed_write_is_tried_again_with_the_same_change() -> None:
    clock = VirtualClock(START)
    registry = StatusRegistry(clock)
    state = {"value": PartState.OK}
    registry.add(lambda: [PartStatus("pbx/a", "x", state["value"], START)])
    sink = Kept()
    recorder = StatusRecorder(registry, sink, clock)
    await recorder.record()
    state["value"] = PartState.STOPPED
    sink.fail = True
    with pytest.raises(OSError):
        await recorder.record()
    sink.fail = False
    assert await recorder.record() == 1
    assert sink.saves[-1] == (["pbx/a"], [])


def test_the_old_words_map_to_one_vocabulary() -> None:
    assert connection_state("connected") is PartState.OK
    assert connection_state("bad_credentials") is PartState.BAD_CREDENTIALS
    assert connection_state("stopped") is PartState.STOPPED
    assert connection_state("something new") is PartState.ERROR
    assert summary([]) is PartState.OK
    assert summary(PartStatus(str(i), "x", s) for i, s in enumerate(
        [PartState.OK, PartState.STALLED, PartState.DEGRADED])) is PartState.STALLED
    assert not PartState.STOPPED.is_ok and PartState.DISABLED.is_ok


async def test_the_recorder_backs_off_while_writes_fail_and_resumes_at_once_after() -> None:
    clock = VirtualClock(START)
    registry = StatusRegistry(clock)
    state = {"value": PartState.OK}
    registry.add(lambda: [PartStatus("pbx/a", "x", state["value"], START)])
    tries: list[float] = []

    class Broken(Kept):
        async def save(self, statuses: Sequence[PartStatus], *, gone: Sequence[str]) -> None:
            tries.append((clock.now() - START).total_seconds())
            await super().save(statuses, gone=gone)

    sink = Broken()
    sink.fail = True
    recorder = StatusRecorder(registry, sink, clock, every=2.0, refresh=60.0)
    task = asyncio.create_task(recorder.run())
    for _ in range(300):
        await clock.advance(1)
        await asyncio.sleep(0)
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    assert gaps[:5] == [4, 8, 16, 32, 60] and set(gaps[4:]) == {60}  # not every 2 s
    assert recorder.last_error == "disk full"
    sink.fail = False
    for _ in range(61):
        await clock.advance(1)
        await asyncio.sleep(0)
    assert recorder.last_error is None and sink.saves
    state["value"] = PartState.ERROR
    saved = len(sink.saves)
    for _ in range(3):
        await clock.advance(1)
        await asyncio.sleep(0)
    assert len(sink.saves) == saved + 1  # back to every 2 s
    task.cancel()

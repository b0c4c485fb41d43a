"""The stop's steps: each within its budget, and a step that runs out says where it waited."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import structlog.testing

from hookd.service import stopping
from hookd.service.stopping import BUDGETS, STOP_BUDGET, bounded, run_until_stopped, where


async def _answers_never(started: asyncio.Event) -> None:
    started.set()
    await asyncio.Event().wait()


async def _commit_to_a_frozen_broker(started: asyncio.Event) -> None:
    await _answers_never(started)


@pytest.mark.parametrize("page", ["docs/delivery.md", "docs/configuration.md"])
def test_the_docs_give_the_stop_budget_as_it_is(page: str) -> None:
    text = (Path(__file__).parents[3] / page).read_text()
    said = (f"`shutdown_timeout` + {STOP_BUDGET:g} s", f"within it + {STOP_BUDGET:g} s")
    assert any(phrase in text for phrase in said)


async def test_a_step_that_ends_in_time_is_true_and_quiet() -> None:
    with structlog.testing.capture_logs() as lines:
        assert await bounded("http", asyncio.sleep(0.01)) is True
    assert lines == []


async def test_a_step_that_overruns_is_cancelled_and_says_where_it_waited(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUDGETS, "commit", 0.3)
    started = asyncio.Event()
    work = _commit_to_a_frozen_broker(started)
    with structlog.testing.capture_logs() as lines:
        assert await bounded("commit", work) is False
    assert started.is_set()
    [line] = lines
    assert line["event"] == "shutdown step overran" and line["log_level"] == "warning"
    assert line["step"] == "commit" and line["budget_s"] == 0.3
    first = line["waiting"][0]  # the step's own task, down to the line that waits
    assert first.startswith("shutdown commit: _commit_to_a_frozen_broker (")
    assert "> _answers_never (tests/unit/service/test_stopping.py:" in first
    await asyncio.sleep(0)
    assert work.cr_frame is None  # cancelled: closed, not left waiting


async def test_a_step_whose_work_ignores_its_cancel_still_ends_within_its_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that goes on waiting after its cancel (aiokafka shields its commit
    request) is left behind: the step ends on time all the same."""
    monkeypatch.setitem(BUDGETS, "clients", 0.3)

    async def deaf() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(5)

    loop = asyncio.get_running_loop()
    began = loop.time()
    with structlog.testing.capture_logs():
        assert await bounded("clients", deaf()) is False
    assert loop.time() - began < 0.3 + 0.2  # its budget, and the loop's own lateness


async def test_beyond_lengthens_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUDGETS, "drain", 0.01)
    assert await bounded("drain", asyncio.sleep(0.1), beyond=1.0) is True


async def test_a_step_that_fails_is_false_and_logged_and_the_stop_goes_on() -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    with structlog.testing.capture_logs() as lines:
        assert await bounded("clients", broken()) is False
    [line] = lines
    assert line["event"] == "shutdown step failed" and line["log_level"] == "error"
    assert line["error"] == "RuntimeError: a bug"


async def test_where_names_the_chain_outermost_first_without_asyncio() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_commit_to_a_frozen_broker(started), name="t")
    await started.wait()
    said = where(task)
    task.cancel()
    here = "tests/unit/service/test_stopping.py"
    assert said.startswith(f"_commit_to_a_frozen_broker ({here}:")
    assert f" > _answers_never ({here}:" in said
    assert "asyncio" not in said and stopping.__name__ not in said


async def test_run_until_stopped_returns_when_run_ends_and_raises_its_error() -> None:
    await run_until_stopped(asyncio.sleep(0), asyncio.Event())

    async def broken() -> None:
        raise RuntimeError("a loop died")

    with pytest.raises(RuntimeError, match="a loop died"):
        await run_until_stopped(broken(), asyncio.Event())


async def test_a_run_that_does_not_see_the_stop_is_cancelled_after_its_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUDGETS, "source", 0.3)
    started, stop = asyncio.Event(), asyncio.Event()
    run = _answers_never(started)  # a fetch that never comes back
    asking = asyncio.get_running_loop().call_later(0.01, stop.set)
    with structlog.testing.capture_logs() as lines:
        await asyncio.wait_for(run_until_stopped(run, stop), 5)
    asking.cancel()
    [line] = lines
    assert line["event"] == "shutdown step overran" and line["step"] == "source"
    assert line["waiting"][0].startswith("source loop: _answers_never (")
    assert run.cr_frame is None  # cancelled


async def test_a_run_that_fails_on_seeing_the_stop_raises_its_error() -> None:
    stop = asyncio.Event()

    async def fails_when_stopped() -> None:
        await stop.wait()
        await asyncio.sleep(0.01)
        raise RuntimeError("closing went wrong")

    asyncio.get_running_loop().call_later(0.01, stop.set)
    with pytest.raises(RuntimeError, match="closing went wrong"):
        await run_until_stopped(fails_when_stopped(), stop)


def test_the_last_resort_dumps_the_stacks_and_exits_1_when_the_process_outlives_it() -> None:
    """A real process that hangs (here: sleeping) past the bound it armed."""
    code = ("import time\nfrom hookd.service.stopping import last_resort\n"
            "last_resort(0.3)\ntime.sleep(60)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, cwd=Path(__file__).parents[3])
    assert done.returncode == 1
    assert "Timeout (0:00:00.300000)!" in done.stderr
    assert 'File "<string>", line 4' in done.stderr  # where it hung: the sleep


def test_the_last_resort_is_armed_for_what_is_left_of_the_bound_once_the_source_loop_ended(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Armed as the shutdown begins, after the source loop's step: from SIGTERM, that step
    and the rest add up to `stop_bound`, which the unit files' TimeoutStopSec exceeds."""
    armed: list[float] = []
    monkeypatch.setattr(stopping, "last_resort", armed.append)
    stopping.arm_last_resort(20.0)
    assert armed == [stopping.stop_bound(20.0) - BUDGETS["source"]]
    assert BUDGETS["source"] + armed[0] == 20.0 + STOP_BUDGET + stopping.TEARDOWN

"""StallWatch: a streak of failures becomes a stall after stall_after; said once per
interval at error level; ends with a success of the same kind."""

from __future__ import annotations

import structlog.testing

from hookd.kafka.stalls import StallWatch, summary


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_streak_becomes_a_stall_is_said_once_per_interval_and_ends() -> None:
    clock, changes = Clock(), []
    watch = StallWatch("source", 10.0, clock=clock, changed=lambda: changes.append(clock.now))
    with structlog.testing.capture_logs() as logs:
        watch.failed("fetch", "fetch", "KafkaConnectionError: refused")
        clock.now += 5
        watch.failed("fetch", "fetch", "KafkaConnectionError: refused")  # same streak
        assert watch.stalls() == []
        clock.now += 5
        watch.check()
        (stall,) = watch.stalls()
        assert stall.since == 1000.0 and stall.reason == "KafkaConnectionError: refused"
        for _ in range(9):  # every turn of the loop: said once, not nine times
            clock.now += 1
            watch.check()
        clock.now += 1
        watch.check()  # stall_after since it was said: said again
        watch.ok("fetch")
        watch.ok("fetch")  # nothing open: nothing said
    said = [(e["log_level"], e["event"]) for e in logs]
    assert said == [("warning", "consumer failing"), ("error", "consumer stalled"),
                    ("error", "consumer stalled"), ("info", "consumer recovered")]
    assert changes == [1010.0, 1020.0]  # the stall began; it ended
    assert watch.stalls() == [] and not watch.is_open("fetch")


def test_a_new_reason_or_offset_keeps_the_start_of_the_streak() -> None:
    clock = Clock()
    watch = StallWatch("retry", 1.0, clock=clock)
    watch.failed("records t-0", "records", "A", partition="t-0", offset=5)
    clock.now += 2
    watch.failed("records t-0", "records", "B", partition="t-0", offset=7)
    (stall,) = watch.stalls()
    assert (stall.since, stall.reason, stall.offset) == (1000.0, "B", 7)


def test_summary_names_the_oldest_and_counts_the_rest() -> None:
    clock = Clock()
    watch = StallWatch("source", 0.0, clock=clock)
    watch.failed("records t-1", "records", "CorruptRecordException: Invalid CRC",
                 partition="t-1", offset=9)
    clock.now += 1
    watch.failed("commit", "commit", "CommitFailedError")
    assert summary(watch.stalls()) == ("source consumer: records: CorruptRecordException: "
                                       "Invalid CRC (t-1 at offset 9) (+1 more)")
    assert summary([]) == ""

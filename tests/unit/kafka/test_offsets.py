"""hookd.kafka.offsets.OffsetTracker: only the contiguous prefix of finished offsets is
committable."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from hookd.kafka.offsets import OffsetTracker, Ticket

TP = TopicPartition("cc.events", 0)
TP1 = TopicPartition("cc.events", 1)
OTHER = TopicPartition("other", 0)


def started(tracker: OffsetTracker, tp: TopicPartition, *offsets: int) -> list[Ticket]:
    return [tracker.start(tp, o) for o in offsets]


def test_nothing_committable_at_first() -> None:
    tracker = OffsetTracker()
    assert tracker.committable() == {}
    started(tracker, TP, 0, 1)
    assert tracker.committable() == {}


def test_in_order_finish_commits_each() -> None:
    tracker = OffsetTracker()
    a, b = started(tracker, TP, 10, 11)
    tracker.finish(a)
    assert tracker.committable() == {TP: 11}
    tracker.finish(b)
    assert tracker.committable() == {TP: 12}


def test_out_of_order_finish_commits_only_the_contiguous_prefix() -> None:
    tracker = OffsetTracker()
    t = started(tracker, TP, 0, 1, 2, 3, 4)
    tracker.finish(t[2])
    tracker.finish(t[4])
    assert tracker.committable() == {}  # 0 is still running
    tracker.finish(t[0])
    assert tracker.committable() == {TP: 1}  # 1 is still running: 2 must not be passed
    tracker.finish(t[1])
    assert tracker.committable() == {TP: 3}
    tracker.finish(t[3])
    assert tracker.committable() == {TP: 5}


def test_gaps_in_offsets_are_fine() -> None:
    """Compacted topics and transaction markers leave holes: commit last finished + 1."""
    tracker = OffsetTracker()
    a, b = started(tracker, TP, 3, 9)
    tracker.finish(a)
    assert tracker.committable() == {TP: 4}
    tracker.finish(b)
    assert tracker.committable() == {TP: 10}


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    (a0,) = started(tracker, TP, 0)
    (b0,) = started(tracker, TP1, 0)
    (c5,) = started(tracker, OTHER, 5)
    tracker.finish(b0)
    tracker.finish(c5)
    assert tracker.committable() == {TP1: 1, OTHER: 6}
    tracker.finish(a0)
    assert tracker.committable() == {TP: 1, TP1: 1, OTHER: 6}


def test_committable_reports_only_moved_offsets_after_mark_committed() -> None:
    tracker = OffsetTracker()
    a, b = started(tracker, TP, 0, 1)
    (c,) = started(tracker, TP1, 0)
    tracker.finish(a)
    tracker.finish(c)
    offsets = tracker.committable()
    assert offsets == {TP: 1, TP1: 1}
    assert tracker.committable() == offsets  # unchanged until marked
    tracker.mark_committed(offsets)
    assert tracker.committable() == {}
    tracker.finish(b)
    assert tracker.committable() == {TP: 2}  # only the partition that moved
    tracker.mark_committed({TP: 2})
    assert tracker.committable() == {}


def test_mark_committed_of_a_partial_commit() -> None:
    """A commit of an older offset (sent before more finished) leaves the newer one pending."""
    tracker = OffsetTracker()
    a, b = started(tracker, TP, 0, 1)
    tracker.finish(a)
    tracker.finish(b)
    tracker.mark_committed({TP: 1})
    assert tracker.committable() == {TP: 2}


def test_mark_committed_of_an_unknown_partition_is_ignored() -> None:
    tracker = OffsetTracker()
    tracker.mark_committed({TP: 5})
    assert tracker.committable() == {}
    assert tracker.partitions() == []


def test_double_finish_is_harmless() -> None:
    tracker = OffsetTracker()
    a, b, _ = started(tracker, TP, 0, 1, 2)
    tracker.finish(b)
    tracker.finish(b)
    assert tracker.committable() == {}
    assert tracker.in_flight(TP) == 2
    tracker.finish(a)
    tracker.finish(a)
    assert tracker.committable() == {TP: 2}
    assert tracker.in_flight(TP) == 1


def test_forget_makes_old_tickets_stale() -> None:
    tracker = OffsetTracker()
    a, b = started(tracker, TP, 0, 1)
    (other,) = started(tracker, TP1, 0)
    tracker.forget({TP})
    assert tracker.partitions() == [TP1]
    assert tracker.in_flight(TP) == 0
    tracker.finish(a)
    tracker.finish(b)
    assert tracker.committable() == {}  # the revoked partition's new owner redelivers
    assert tracker.partitions() == [TP1]  # a late finish does not bring the partition back
    tracker.finish(other)
    assert tracker.committable() == {TP1: 1}


def test_stale_ticket_ignored_when_the_partition_comes_back_with_the_same_offset() -> None:
    tracker = OffsetTracker()
    old0, old1 = started(tracker, TP, 0, 1)
    tracker.forget([TP])
    new0, new1 = started(tracker, TP, 0, 1)  # reassigned: redelivered from the commit
    tracker.finish(old0)
    tracker.finish(old1)
    assert tracker.committable() == {}
    assert tracker.in_flight(TP) == 2
    tracker.finish(new0)
    assert tracker.committable() == {TP: 1}
    tracker.finish(old1)  # still stale
    assert tracker.committable() == {TP: 1}
    tracker.finish(new1)
    assert tracker.committable() == {TP: 2}


def test_forget_drops_the_committed_mark_too() -> None:
    tracker = OffsetTracker()
    (a,) = started(tracker, TP, 0)
    tracker.finish(a)
    tracker.mark_committed(tracker.committable())
    tracker.forget([TP])
    (b,) = started(tracker, TP, 1)
    tracker.finish(b)
    assert tracker.committable() == {TP: 2}


def test_forget_of_an_unknown_partition_is_fine() -> None:
    tracker = OffsetTracker()
    tracker.forget({TP})
    assert tracker.partitions() == []


@pytest.mark.parametrize(("first", "then"), [(5, 5), (5, 4), (5, 0)])
def test_start_with_a_non_increasing_offset_raises(first: int, then: int) -> None:
    tracker = OffsetTracker()
    tracker.start(TP, first)
    with pytest.raises(ValueError, match="not after"):
        tracker.start(TP, then)
    assert tracker.in_flight(TP) == 1


@pytest.mark.parametrize("then", [5, 3])
def test_start_with_a_non_increasing_offset_raises_after_everything_finished(then: int) -> None:
    """Nothing in flight any more must not let an old offset in: the commit would go back."""
    tracker = OffsetTracker()
    (a,) = started(tracker, TP, 5)
    tracker.finish(a)
    assert tracker.committable() == {TP: 6}
    with pytest.raises(ValueError, match="not after"):
        tracker.start(TP, then)
    assert tracker.committable() == {TP: 6}


def test_start_after_forget_may_go_back() -> None:
    tracker = OffsetTracker()
    (a,) = started(tracker, TP, 5)
    tracker.finish(a)
    tracker.forget([TP])
    (b,) = started(tracker, TP, 2)
    tracker.finish(b)
    assert tracker.committable() == {TP: 3}


def test_in_flight_counts() -> None:
    tracker = OffsetTracker()
    a = started(tracker, TP, 0, 1, 2)
    b = started(tracker, TP1, 7)
    assert tracker.in_flight() == 4
    assert tracker.in_flight(TP) == 3
    assert tracker.in_flight(TP1) == 1
    assert tracker.in_flight(OTHER) == 0
    tracker.finish(a[1])  # out of order: no longer in flight, though not committable
    assert tracker.in_flight(TP) == 2
    assert tracker.committable() == {}
    tracker.finish(a[0])
    tracker.finish(a[2])
    tracker.finish(b[0])
    assert tracker.in_flight() == 0
    assert sorted(tracker.partitions(), key=lambda t: t.partition) == [TP, TP1]


# --------------------------------------------------------------------- stateful property

PARTS = [TopicPartition("t", p) for p in range(3)]


class TrackerMachine(RuleBasedStateMachine):
    """Random interleavings of start/finish/commit/revoke over several partitions, checked
    against a model: the committable offset is the largest started offset below the first
    unfinished one, plus one; it never passes an unfinished offset."""

    @initialize()
    def setup(self) -> None:
        self.tracker = OffsetTracker()
        self.next_offset = dict.fromkeys(PARTS, 0)
        self.started: dict[TopicPartition, list[int]] = {tp: [] for tp in PARTS}
        self.unfinished: dict[TopicPartition, dict[int, Ticket]] = {tp: {} for tp in PARTS}
        self.stale: list[Ticket] = []
        self.committed: dict[TopicPartition, int] = {}

    @rule(p=st.integers(0, len(PARTS) - 1), gap=st.integers(1, 3))
    def start(self, p: int, gap: int) -> None:
        tp = PARTS[p]
        offset = self.next_offset[tp]
        self.next_offset[tp] = offset + gap
        ticket = self.tracker.start(tp, offset)
        self.started[tp].append(offset)
        self.unfinished[tp][offset] = ticket

    @precondition(lambda self: any(self.unfinished.values()))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        choices = [(tp, o) for tp in PARTS for o in sorted(self.unfinished[tp])]
        tp, offset = data.draw(st.sampled_from(choices))
        self.tracker.finish(self.unfinished[tp].pop(offset))

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data())
    def finish_stale(self, data: st.DataObject) -> None:
        self.tracker.finish(data.draw(st.sampled_from(self.stale)))

    @rule()
    def commit(self) -> None:
        offsets = self.tracker.committable()
        self.tracker.mark_committed(offsets)
        self.committed.update(offsets)

    @rule(p=st.integers(0, len(PARTS) - 1))
    def revoke(self, p: int) -> None:
        """Revoked and assigned again: redelivery restarts from the last commit."""
        tp = PARTS[p]
        self.tracker.forget([tp])
        self.stale += self.unfinished[tp].values()
        self.unfinished[tp] = {}
        self.started[tp] = []
        self.next_offset[tp] = self.committed.pop(tp, 0)

    def expected(self, tp: TopicPartition) -> int | None:
        pending = self.unfinished[tp]
        first_pending = min(pending) if pending else None
        done = [o for o in self.started[tp]
                if o not in pending and (first_pending is None or o < first_pending)]
        return max(done) + 1 if done else None

    @invariant()
    def committable_matches_the_model(self) -> None:
        if not hasattr(self, "tracker"):
            return
        got = self.tracker.committable()
        for tp in PARTS:
            want = self.expected(tp)
            pending = self.unfinished[tp]
            if tp in got:
                assert not pending or got[tp] <= min(pending), "passed an unfinished offset"
                assert got[tp] == want
            else:
                assert want is None or want == self.committed.get(tp)
            if self.started[tp] and not pending:  # all finished: reaches last + 1
                assert (got.get(tp) or self.committed.get(tp)) == self.started[tp][-1] + 1
            assert self.tracker.in_flight(tp) == len(pending)


TrackerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30,
                                            deadline=None)
test_tracker_state_machine = TrackerMachine.TestCase


@st.composite
def _plans(draw: st.DrawFn) -> tuple[dict[int, list[int]], list[tuple[int, int]]]:
    """Offsets per partition and a finishing order that interleaves all partitions."""
    offsets = {p: sorted(draw(st.sets(st.integers(0, 1000), min_size=1, max_size=15)))
               for p in range(draw(st.integers(1, 4)))}
    order = draw(st.permutations([(p, o) for p, os in offsets.items() for o in os]))
    return offsets, list(order)


@given(plan=_plans())
@settings(max_examples=60, deadline=None)
def test_random_finish_orders_never_pass_an_unfinished_offset(
        plan: tuple[dict[int, list[int]], list[tuple[int, int]]]) -> None:
    offsets, order = plan
    tracker = OffsetTracker()
    tickets = {(p, o): tracker.start(TopicPartition("t", p), o)
               for p, os in offsets.items() for o in os}
    unfinished = set(tickets)
    for p, o in order:
        tracker.finish(tickets[p, o])
        unfinished.discard((p, o))
        for tp, commit in tracker.committable().items():
            assert all(commit <= u for q, u in unfinished if q == tp.partition)
            assert commit - 1 in offsets[tp.partition]
            assert (tp.partition, commit - 1) not in unfinished
    assert tracker.committable() == {TopicPartition("t", p): os[-1] + 1
                                     for p, os in offsets.items()}
    assert tracker.in_flight() == 0

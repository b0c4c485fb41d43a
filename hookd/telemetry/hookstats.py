"""Per-hook figures since this process started: how its deliveries ended, its attempts by
status class and duration, its last error. Fed where outcomes are final (dispatch,
endings, attempts): one dict lookup per outcome, then plain integer adds; read by
`hookd status` (through the health document) and by /metrics (hookd.service.metrics), at scrape
time. No label value ever comes from an event: the keys are hook ids from the config.

The one count of each delivery's ending: the daemon's totals (delivered, parked,
dead-lettered, waiting in memory) are their sums (`HookStats.total`), never counted apart.
Each fact has one name everywhere (metrics, the health document, `hookd status`):
`dead_lettered` is a delivery written to the dead-letter topic; a log line's
`outcome=failed` is one attempt that failed, never a delivery's end."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence

# seconds: one attempt (connect, send, answer), and an event's record → final delivery
DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                                       2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                                  60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)
STATUS_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
_2XX = STATUS_CLASSES.index("2xx")
assert _2XX == 2  # (written as a constant in `HookStats.delivered`)
OUTCOMES = ("delivered", "retried", "parked", "dead_lettered", "skipped")


class Buckets:
    """A histogram's counts (not cumulative: hookd.service.metrics sums them when scraped)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound as Prometheus writes it, cumulative count), +Inf last."""
        out, total = [], 0
        for bound, n in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class HookStat:
    """One hook's figures."""

    __slots__ = ("attempts", "dead_lettered", "delivered", "duration", "last_error",
                 "last_error_at", "parked", "retried", "returned", "skipped", "waiting")

    def __init__(self) -> None:
        self.delivered = self.retried = self.parked = self.dead_lettered = self.skipped = 0
        self.returned = 0  # parked deliveries that came back from a retry topic
        self.waiting = 0  # deliveries waiting in memory for their next attempt, now
        self.attempts = [0] * len(STATUS_CLASSES)  # by status // 100 (0: no answer)
        self.duration = Buckets(DURATION_BUCKETS)
        self.last_error: str | None = None
        self.last_error_at: float | None = None  # epoch seconds

    def attempt(self, status: int | None, seconds: float) -> None:
        """An attempt that was made (sent, or tried to be): its answer's class, its time."""
        self.attempts[status // 100 if status and 100 <= status < 600 else 0] += 1
        self.duration.observe(seconds)

    def error(self, text: str) -> None:
        self.last_error, self.last_error_at = text, time.time()

    @property
    def retrying(self) -> int:
        """Waiting for a next attempt: in memory now, plus those parked by this process
        not back yet (a guess after a restart: parked ones of an earlier run are unknown)."""
        return self.waiting + max(0, self.parked - self.returned)

    def as_dict(self) -> dict[str, object]:
        return {"delivered": self.delivered, "dead_lettered": self.dead_lettered,
                "retried": self.retried, "parked": self.parked, "skipped": self.skipped,
                "retrying": self.retrying, "last_error": self.last_error,
                "last_error_at": self.last_error_at}


class HookStats:
    """Every configured hook's `HookStat`, by hook id (`hooks`); `keep` leaves out those a
    reload removed (their series leave /metrics). A delivery of a hook no longer configured
    (parked before a reload) gets one, made on first use. No figure is ever dropped: a
    removed hook's stay in the totals, and come back with it if a reload brings it back,
    so the totals never go down (Prometheus counters)."""

    def __init__(self, hook_ids: Iterable[str] = ()) -> None:
        self.hooks: dict[str, HookStat] = {h: HookStat() for h in hook_ids}
        self._every: dict[str, HookStat] = dict(self.hooks)  # every hook ever counted
        self.lag = Buckets(LAG_BUCKETS)  # record timestamp → final delivery, all hooks

    def of(self, hook_id: str) -> HookStat:
        stat = self.hooks.get(hook_id)
        if stat is None:
            stat = self.hooks[hook_id] = self._every.get(hook_id) or HookStat()
            self._every[hook_id] = stat
        return stat

    def keep(self, hook_ids: Iterable[str]) -> None:
        """After a reload: the new config's hooks, each with its figures so far."""
        self.hooks = {h: self.of(h) for h in hook_ids}

    def total(self, figure: str) -> int:
        """A figure (`delivered`, `parked`, `dead_lettered`, `waiting`...) of every hook
        this process has counted, removed ones included."""
        return sum(getattr(stat, figure) for stat in self._every.values())

    def delivered(self, hook_id: str, timestamp_ms: int | None, now: float,
                  seconds: float | None = None) -> None:
        """A delivery ended delivered at `now` (epoch seconds): counted, its lag from its
        record's timestamp observed; and with `seconds` (/metrics on) the attempt that
        delivered it, a 2xx, counted as `HookStat.attempt` counts one. One call per
        delivery for what was five (a lookup, `attempt`, `delivered`, two `observe`): the
        buckets are fed here, as `Buckets.observe` does (one call on the hot path)."""
        stat = self.hooks.get(hook_id) or self.of(hook_id)
        stat.delivered += 1
        if seconds is not None:
            stat.attempts[2] += 1  # (2xx: `_2XX`, a constant here, not a global per call)
            duration = stat.duration
            duration.counts[bisect_left(duration.bounds, seconds)] += 1
            duration.sum += seconds
        if timestamp_ms is not None and timestamp_ms >= 0:
            lag = self.lag
            value = now - timestamp_ms / 1000
            if value < 0.0:  # (a record stamped ahead of this clock: no `max` call)
                value = 0.0
            lag.counts[bisect_left(lag.bounds, value)] += 1
            lag.sum += value

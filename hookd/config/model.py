"""The configuration's data model (pydantic v2, strict, unknown keys rejected): the whole file."""

from __future__ import annotations

from pydantic import Field

from hookd.config.hooks import HookConfig
from hookd.config.service import (
    DeliveryConfig,
    EventsConfig,
    HealthConfig,
    KafkaConfig,
    LoggingConfig,
)
from hookd.config.types import Duration, Model


class Config(Model):
    """The main file (`hookd run -c PATH`; default `$HOOKD_CONFIG`, else
    /etc/hookd/hookd.yaml)."""

    kafka: KafkaConfig = KafkaConfig()
    """The cluster, the topics and the consumer group."""
    events: EventsConfig = EventsConfig()
    """How a record's event is read."""
    delivery: DeliveryConfig = DeliveryConfig()
    """How requests are sent."""
    health: HealthConfig = HealthConfig()
    """The health listener."""
    logging: LoggingConfig = LoggingConfig()
    """Log lines on stdout."""
    shutdown_timeout: Duration = 20.0
    """On SIGTERM, how long in-flight deliveries may finish before hookd commits what is
    final and exits; the rest is redelivered after the restart (same `webhook-id`). hookd
    exits within it + 9 s ([delivery.md](delivery.md#order-and-at-least-once)); keep the
    unit's `TimeoutStopSec` above that."""
    hooks_dir: str | None = "hooks.d"
    """A folder, relative to the main file, whose `*.yaml` files are loaded in name order,
    each holding a `hooks:` list. A folder that does not exist gives no hooks; null: none."""
    hooks: list[HookConfig] = Field(default_factory=list)
    """Hooks written in the main file itself (beside those of `hooks_dir`)."""

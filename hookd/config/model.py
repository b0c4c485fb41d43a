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
    kafka: KafkaConfig = KafkaConfig()
    events: EventsConfig = EventsConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    health: HealthConfig = HealthConfig()
    logging: LoggingConfig = LoggingConfig()
    shutdown_timeout: Duration = 20.0
    hooks_dir: str | None = "hooks.d"
    hooks: list[HookConfig] = Field(default_factory=list)

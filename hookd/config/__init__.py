"""The configuration stage: the model (`model`, `service`, `hooks`, `types`), durations,
the YAML source with line numbers (`source`) and secrets (`secrets`). The model's names
are the package's face: `from hookd.config import KafkaConfig`."""

from hookd.config.hooks import (
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    HookConfig,
    HookRetry,
    HooksFile,
    OAuth2Auth,
    RequestConfig,
    SigningConfig,
    TlsConfig,
    signing_key,
)
from hookd.config.model import Config
from hookd.config.service import (
    BreakerConfig,
    ConsumerTuning,
    DeliveryConfig,
    EventsConfig,
    HealthConfig,
    KafkaConfig,
    LoggingConfig,
    RetryConfig,
    SecurityConfig,
)
from hookd.config.types import Duration, HostPort, Model, Rate, host_port, parse_rate

__all__ = [
    "ApiKeyAuth", "Auth", "BasicAuth", "BearerAuth", "BreakerConfig", "Config",
    "ConsumerTuning", "DeliveryConfig", "Duration", "EventsConfig", "HealthConfig",
    "HookConfig", "HookRetry", "HooksFile", "HostPort", "KafkaConfig", "LoggingConfig", "Model",
    "OAuth2Auth", "Rate", "RequestConfig", "RetryConfig", "SecurityConfig", "SigningConfig",
    "TlsConfig", "host_port", "parse_rate", "signing_key",
]

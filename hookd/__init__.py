"""hookd: a webhook dispatcher for contact-center events (Kafka in, signed HTTP out)."""

from __future__ import annotations

__version__ = "0.1.0"
USER_AGENT = f"hookd/{__version__}"

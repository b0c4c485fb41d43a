"""Telemetry: structlog set-up and the libraries' records (`logs`), masking secrets
(`redact`), per-hook figures (`hookstats`). Below everything but `errors` and `loops`:
it imports nothing else of hookd."""

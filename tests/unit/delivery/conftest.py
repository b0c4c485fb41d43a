"""The HTTP test server and sender fixtures of test_sender, for every delivery test."""

from tests.unit.delivery.test_sender import make_sender, sender, serve, server

__all__ = ["make_sender", "sender", "serve", "server"]

"""The CLI's health check talks to a real HTTP server: the API tests' stub one."""

from tests.unit.api.conftest import serve_api

__all__ = ["serve_api"]

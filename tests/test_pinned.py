"""The private names of other libraries that the code relies on, each pinned here: when a library changes one,
this test names it, instead of a feature going wrong somewhere later."""

import asyncio
import contextlib
import inspect
import logging

import lightning as L
import pytest

from common.process import RANK_ZERO_LOGGERS, hide_advertisements


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _tips(monkeypatch, caplog, hidden: bool) -> list[str]:
    """The names of Lightning's rank-zero loggers on which a Trainer's construction logs a record mentioning
    litlogger, in a process without the tip filter, or with it (hide_advertisements)."""
    handler = _Records()
    with contextlib.ExitStack() as stack:
        for name in RANK_ZERO_LOGGERS:
            logger = logging.getLogger(name)
            monkeypatch.setattr(logger, "filters", [])  # as in a process that never added it; restored after the test
            stack.enter_context(caplog.at_level(logging.INFO, logger=name))
            logger.addHandler(handler)
            stack.callback(logger.removeHandler, handler)
        if hidden:
            hide_advertisements()
        L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    return [record.name for record in handler.records if "litlogger" in record.getMessage()]


def test_lightnings_tip_is_logged_where_the_cli_filters_it(monkeypatch, caplog):
    """common.process.hide_advertisements filters Lightning's "try installing litlogger" tip, by its text,
    on the loggers RANK_ZERO_LOGGERS names: a Trainer logs it on one of them, and not once they are filtered."""
    shown = _tips(monkeypatch, caplog, hidden=False)
    assert shown and set(shown) <= set(RANK_ZERO_LOGGERS), shown
    assert _tips(monkeypatch, caplog, hidden=True) == []


def test_litserve_routes_that_the_server_replaces():
    """common.deploy.serve.build_server takes LitServe's "/" and "/health" routes out of app.router.routes, and
    answers /health by awaiting the removed route's endpoint (its .body and .status_code) behind the route's own
    dependencies (the key check)."""
    ls = pytest.importorskip("litserve")
    from fastapi.routing import APIRoute
    from starlette.requests import Request

    class Echo(ls.LitAPI):
        def setup(self, device) -> None:
            pass

        def predict(self, x):
            return x

    server = ls.LitServer(Echo(), accelerator="cpu", devices=1, workers_per_device=1)  # built, never run
    routes = {
        route.path: route for route in server.app.router.routes if getattr(route, "path", None) in ("/", "/health")
    }
    assert set(routes) == {"/", "/health"} and all(isinstance(r, APIRoute) for r in routes.values()), routes
    health = routes["/health"]
    assert isinstance(health.dependencies, list) and health.dependencies
    assert inspect.iscoroutinefunction(health.endpoint)
    assert list(inspect.signature(health.endpoint).parameters) == ["request"]
    # LitServer.run sets up the workers' status; a server whose workers are not up answers "not ready".
    server.workers_setup_status = {}
    answer = asyncio.run(health.endpoint(Request({"type": "http", "method": "GET", "path": "/health", "headers": []})))
    assert (answer.status_code, answer.body) == (503, b"not ready")


def test_the_private_lightningcli_step_overridden_is_still_called_right_after_parsing():
    from lightning.pytorch.cli import LightningCLI

    # WorkflowCLI overrides LightningCLI._parse_ckpt_path (no public way to skip it for an ensemble's list).
    source = inspect.getsource(LightningCLI.__init__)
    assert "self._parse_ckpt_path()" in source
    assert source.index("self.parse_arguments(") < source.index("self._parse_ckpt_path()")
    assert source.index("self._parse_ckpt_path()") < source.index("self.before_instantiate_classes()")

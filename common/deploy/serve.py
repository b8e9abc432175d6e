"""A classifier behind LitServe: ``POST /predict`` takes ``{"inputs": [...]}`` (one input or many) and answers
``{"predictions": [{"label", "probabilities", "note"}, ...]}`` in order; LitServe batches requests that arrive
together (``max_batch_size``, ``batch_timeout``); ``GET /health`` answers 200 once the model is loaded; ``GET /``
is a page to try the model in a browser. ``/openapi.json`` describes every answer.

A bad request gets a 4xx status and a one-line ``detail``, for that request alone: its shape, types and stated
limits are checked as its JSON is read, before it joins a batch, and what only the model's worker can read (an
image, a tokenizer's view of a sentence) is refused there as a ``Refused`` kept with that request, because LitServe
answers a whole batch with the error of any of its requests that raises.
"""

import argparse
import functools
import importlib.resources
import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import litserve as ls
import numpy as np
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute

from common.deploy.console import program
from common.deploy.contract import API_KEY_VARIABLE, MAX_BODY, MAX_INPUTS, one_line_validation_error, openapi
from common.deploy.predictor import Predictor
from common.errors import ConfigError, DataError, InputTooLarge, exit_on_reported_error

# Measured with bench/serve_load.py (docs/serving.md): a batch waits at most this long for others to join it.
MAX_BATCH_SIZE, BATCH_TIMEOUT = 64, 0.005
LOOPBACK = ("127.0.0.1",)

log = logging.getLogger(__name__)


class Decoded:
    """A request's inputs as one array, and a note for each."""

    def __init__(self, arrays: np.ndarray, notes: list[str]) -> None:
        self.arrays, self.notes = arrays, notes


class Refused:
    """A request the model's worker could not read: answered with ``status`` and ``detail``, alone."""

    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, " ".join(detail.split())

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=self.status)


class ClassifierAPI(ls.LitAPI):
    """A ``Predictor`` (common/deploy/predictor.py) behind LitServe: ``load()`` gives it, in the model's worker. A
    workflow's subclass overrides ``decode_request`` only to annotate it with its request model (LitServe reads the
    endpoint's body from that annotation), and implements ``decode(request)``, which gives the request's inputs as
    the predictor's ``input_shape`` rows, raising DataError or ValueError for an input it cannot read
    (InputTooLarge: 413)."""

    predictor: Predictor

    def __init__(self, load: Callable[[], Predictor], max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.load = load

    def setup(self, device) -> None:
        self.predictor = self.load()

    def decode(self, request) -> Decoded:
        raise NotImplementedError

    def decode_request(self, request) -> Decoded | Refused:
        try:
            return self.decode(request)
        except InputTooLarge as error:
            return Refused(413, str(error))
        except (DataError, ValueError) as error:
            return Refused(422, str(error))
        except Exception:  # a fault of the server's: this request's 500, not its batch's
            log.exception("decoding a request failed")
            return Refused(500, "Internal server error")

    def batch(self, decoded: list) -> list:
        return decoded

    def predict(self, decoded: Decoded | Refused | list) -> list | tuple | Refused:
        requests = decoded if isinstance(decoded, list) else [decoded]
        good = [d for d in requests if isinstance(d, Decoded)]
        outputs = {}
        if good:
            # All readable requests of a batch in one pass of the model, then each request's rows back.
            probabilities = self.predictor.class_probabilities(np.concatenate([d.arrays for d in good]))
            split = np.split(probabilities, np.cumsum([len(d.arrays) for d in good])[:-1])
            outputs = {id(d): (p, d.notes) for d, p in zip(good, split)}
        answers = [outputs.get(id(d), d) for d in requests]
        return answers if isinstance(decoded, list) else answers[0]

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output) -> Response:
        if isinstance(output, Refused):
            return output.response()
        probabilities, notes = output
        names = self.predictor.class_names
        predictions = [
            {
                "label": names[int(p.argmax())],
                "probabilities": {name: round(float(q), 6) for name, q in zip(names, p)},
                "note": note,
            }
            for p, note in zip(probabilities, notes)
        ]
        # The JSON is written here, in the model's worker, instead of by FastAPI in the HTTP process, which every
        # request goes through and which is the server's busiest (docs/serving.md).
        return Response(json.dumps({"predictions": predictions}).encode(), media_type="application/json")


def page() -> str:
    return importlib.resources.files("common.deploy").joinpath("page.html").read_text(encoding="utf-8")


def _route(app, path: str) -> APIRoute:
    return next(route for route in app.router.routes if getattr(route, "path", None) == path)


def build_server(api: ClassifierAPI, workflow: str, class_names: list[str], limits: dict) -> ls.LitServer:
    server = ls.LitServer(
        api,
        accelerator="cpu",
        devices=1,
        workers_per_device=1,
        max_payload_size=MAX_BODY,
        model_metadata={
            "workflow": workflow,
            "classes": list(class_names),
            "limits": {"body_bytes": MAX_BODY, "inputs": MAX_INPUTS, **limits},
        },
    )
    app = server.app
    app.add_exception_handler(RequestValidationError, one_line_validation_error)
    # LitServe's "/" says only that it runs: the page takes its place, free to load without a key (its own
    # requests send one).
    app.router.routes.remove(_route(app, "/"))
    app.add_api_route("/", page, methods=["GET"], response_class=HTMLResponse)
    # LitServe's /health answers without a Content-Type: the same answer, as the text/plain it is.
    health = _route(app, "/health")
    app.router.routes.remove(health)

    async def plain_health(request: Request) -> PlainTextResponse:
        answer = await health.endpoint(request)
        return PlainTextResponse(answer.body, status_code=answer.status_code)

    app.add_api_route("/health", plain_health, methods=["GET"], dependencies=health.dependencies)
    app.openapi = functools.partial(
        openapi, app, app.openapi, class_names, keyed=bool(os.environ.get(API_KEY_VARIABLE))
    )
    return server


def serve_command(
    args: list[str] | None,
    *,
    workflow: str,
    load: Callable[..., Predictor],
    api_class: type[ClassifierAPI],
    limits: dict,
) -> None:
    """The serve command of a workflow: ``--ckpt CKPT`` (torch; repeated, an ensemble) or ``--model DIR`` (an export,
    onnxruntime)."""
    command = workflow.replace("_", "-")
    parser = argparse.ArgumentParser(
        prog=program(f"{command}-serve", f"{workflow}.serve"),
        description=f"Serve a {workflow} checkpoint or export over HTTP with LitServe: POST /predict, GET /health, "
        f"and a page to try it at /. Listens on 127.0.0.1; another host needs a key in {API_KEY_VARIABLE}, which "
        "clients send in the X-API-Key header.",
    )
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt", action="append", help=f"a checkpoint of {command}; repeated, an ensemble")
    weights.add_argument("--model", help=f"a folder written by {command}-export (onnxruntime, no torch)")
    parser.add_argument("--host", default="127.0.0.1", choices=("127.0.0.1", "0.0.0.0", "::"))
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch-size", type=int, default=MAX_BATCH_SIZE, help="1 turns batching off")
    parser.add_argument("--batch-timeout", type=float, default=BATCH_TIMEOUT, help="seconds a batch waits to fill")
    options = parser.parse_args(args)
    paths = [options.model] if options.model else options.ckpt
    with exit_on_reported_error():
        if options.host not in LOOPBACK and not os.environ.get(API_KEY_VARIABLE):
            raise ConfigError(
                f"--host {options.host} opens the model to the network: set a key first, e.g. "
                f'export {API_KEY_VARIABLE}="$(python -c "import secrets; print(secrets.token_urlsafe())")", '
                "and clients send it in the X-API-Key header."
            )
        for path in paths:
            if not Path(path).exists():
                raise DataError(f"{path} does not exist.")
        # A bad path refused here, in one line, not in the server's worker; this process's predictor is then
        # dropped: the worker loads its own (one read of each file in each).
        class_names = load(*paths).class_names
        api = api_class(_Loader(load, paths), options.max_batch_size, options.batch_timeout)
        server = build_server(api, workflow, class_names, limits)
        stop_on_sigterm()
        try:
            server.run(host=options.host, port=options.port, generate_client_file=False, log_level="warning")
        except ValueError as error:  # LitServe's refusal of a setting, e.g. a port out of its range
            raise ConfigError(str(error)) from None


def stop_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd, kill) takes LitServe's Ctrl+C path: in-flight requests are answered, the
    workers stopped, and the command exits 0."""
    signal.signal(signal.SIGTERM, functools.partial(_interrupt, os.getpid()))


def _interrupt(main_pid: int, signum: int, frame) -> None:
    if os.getpid() == main_pid:
        raise KeyboardInterrupt
    # A server process forked from the main one, which LitServe stops with SIGTERM: the default, as it expects.
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


class _Loader:
    """``load(*paths)``, deferred to LitServe's worker process (picklable, unlike a lambda)."""

    def __init__(self, load: Callable[..., Predictor], paths: list[str]) -> None:
        self.load, self.paths = load, paths

    def __call__(self) -> Predictor:
        return self.load(*self.paths, shared_cores=True)  # the worker shares the cores with the HTTP process

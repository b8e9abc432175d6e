"""A classifier behind LitServe: ``POST /predict`` takes ``{"inputs": [...]}`` (one input or many) and answers
``{"predictions": [{"label", "probabilities", "note"}, ...]}`` in order; LitServe batches requests that arrive
together (``max_batch_size``, ``batch_timeout``); ``GET /health`` answers 200 once the model is loaded; ``GET /``
is a page to try the model in a browser. A bad request gets a 4xx status and a one-line ``detail``, and the
server goes on serving everyone else."""

import argparse
import functools
import importlib.resources
import os
import signal
from collections.abc import Callable
from pathlib import Path

import litserve as ls
import numpy as np
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from common.console import program
from common.errors import DataError, exit_on_reported_error

MAX_INPUTS = 1000  # per request: more is refused (413), so that one request cannot hold the others for long
MAX_BODY = 5 * 1024 * 1024  # bytes
# Measured with bench/serve_load.py (docs/serving.md): a batch waits at most this long for others to join it.
MAX_BATCH_SIZE, BATCH_TIMEOUT = 64, 0.005


class PredictRequest(BaseModel):
    """The body of ``POST /predict``: FastAPI refuses malformed JSON and missing fields before it reaches the
    model. An input is a sentence, a base64 PNG/JPEG image, or a 28x28 array of pixels in [0, 1]."""

    inputs: str | list[str | list[list[float]]]
    resize: bool = False
    invert: bool = False


class Decoded:
    """A request's inputs as one array, and a note for each."""

    def __init__(self, arrays: np.ndarray, notes: list[str]) -> None:
        self.arrays, self.notes = arrays, notes


class ClassifierAPI(ls.LitAPI):
    """``load()`` gives a predictor whose ``class_probabilities`` maps an input array to (N, classes);
    ``decode(request, predictor)`` turns a request into a ``Decoded``, raising ValueError for a bad input."""

    def __init__(self, load: Callable, decode: Callable, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.load, self.decode = load, decode

    def setup(self, device) -> None:
        self.predictor = self.load()

    def decode_request(self, request: PredictRequest) -> Decoded:
        inputs = [request.inputs] if isinstance(request.inputs, str) else request.inputs
        if not inputs:
            raise HTTPException(422, "inputs is empty: give one input or more.")
        if len(inputs) > MAX_INPUTS:
            raise HTTPException(413, f"{len(inputs)} inputs in one request; at most {MAX_INPUTS}.")
        try:
            return self.decode(inputs, request, self.predictor)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None

    def batch(self, decoded: list[Decoded]) -> list[Decoded]:
        return decoded

    def predict(self, decoded: Decoded | list[Decoded]) -> list[np.ndarray] | np.ndarray:
        requests = decoded if isinstance(decoded, list) else [decoded]
        # All requests of a batch in one pass of the model, then each request's rows back.
        probabilities = self.predictor.class_probabilities(np.concatenate([d.arrays for d in requests]))
        split = np.split(probabilities, np.cumsum([len(d.arrays) for d in requests])[:-1])
        return (
            [(p, d.notes) for p, d in zip(split, requests)] if isinstance(decoded, list) else (split[0], decoded.notes)
        )

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output) -> dict:
        probabilities, notes = output
        names = self.predictor.class_names
        return {
            "predictions": [
                {
                    "label": names[int(p.argmax())],
                    "probabilities": {name: round(float(q), 6) for name, q in zip(names, p)},
                    "note": note,
                }
                for p, note in zip(probabilities, notes)
            ]
        }


async def one_line_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    if "json" not in request.headers.get("content-type", ""):
        return JSONResponse({"detail": "send the body as JSON, with Content-Type: application/json."}, status_code=415)
    problem = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
    if problem.get("type") == "json_invalid":
        return JSONResponse({"detail": "the body is not valid JSON."}, status_code=400)
    message = problem.get("msg", "invalid request")
    return JSONResponse({"detail": f"{where}: {message}" if where else message}, status_code=422)


def page() -> str:
    return importlib.resources.files("common").joinpath("page.html").read_text(encoding="utf-8")


def build_server(api: ClassifierAPI, workflow: str, class_names: list[str]) -> ls.LitServer:
    server = ls.LitServer(
        api,
        accelerator="cpu",
        devices=1,
        workers_per_device=1,
        max_payload_size=MAX_BODY,
        model_metadata={"workflow": workflow, "classes": list(class_names)},
    )
    server.app.add_exception_handler(RequestValidationError, one_line_validation_error)
    # LitServe's own "/" says only that it runs: the page takes its place.
    server.app.router.routes = [route for route in server.app.router.routes if getattr(route, "path", None) != "/"]
    server.app.add_api_route("/", lambda: HTMLResponse(page()), methods=["GET"])
    return server


def serve_command(args: list[str] | None, *, workflow: str, load: Callable, decode: Callable) -> None:
    """The serve command of a workflow: ``--ckpt CKPT`` (torch) or ``--model DIR`` (an export, onnxruntime)."""
    command = workflow.replace("_", "-")
    parser = argparse.ArgumentParser(
        prog=program(f"{command}-serve", f"{workflow}.serve"),
        description=f"Serve a {workflow} checkpoint or export over HTTP with LitServe: POST /predict, GET /health, "
        "and a page to try it at /. Listens on 127.0.0.1 unless --host says otherwise.",
    )
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt", help=f"a checkpoint of {command}")
    weights.add_argument("--model", help=f"a folder written by {command}-export (onnxruntime, no torch)")
    parser.add_argument("--host", default="127.0.0.1", choices=("127.0.0.1", "0.0.0.0", "::"))
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch-size", type=int, default=MAX_BATCH_SIZE, help="1 turns batching off")
    parser.add_argument("--batch-timeout", type=float, default=BATCH_TIMEOUT, help="seconds a batch waits to fill")
    options = parser.parse_args(args)
    path = options.model or options.ckpt
    with exit_on_reported_error():
        if not Path(path).exists():
            raise DataError(f"{path} does not exist.")
        class_names = load(path).class_names  # a bad path refused here, in one line, not in the server's worker
        api = ClassifierAPI(_Loader(load, path), decode, options.max_batch_size, options.batch_timeout)
        server = build_server(api, workflow, class_names)
        # SIGTERM (docker stop, systemd, kill) takes LitServe's Ctrl+C path: in-flight requests are answered,
        # the workers stopped, and the command exits 0.
        signal.signal(signal.SIGTERM, functools.partial(_interrupt, os.getpid()))
        server.run(host=options.host, port=options.port, generate_client_file=False, log_level="warning")


def _interrupt(main_pid: int, signum: int, frame) -> None:
    if os.getpid() == main_pid:
        raise KeyboardInterrupt
    # A server process forked from the main one, which LitServe stops with SIGTERM: the default, as it expects.
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


class _Loader:
    """``load(path)``, deferred to LitServe's worker process (picklable, unlike a lambda)."""

    def __init__(self, load: Callable, path: str) -> None:
        self.load, self.path = load, path

    def __call__(self):
        return self.load(self.path)

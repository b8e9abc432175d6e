"""Both workflows behind LitServe on 127.0.0.1: answers, refusals that leave the server serving, a clean stop on
SIGTERM, and the same answers after a restart."""

import base64
import contextlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``python -m <workflow>.serve ...`` on a free port of 127.0.0.1, up once /health answers 200."""

    def __init__(self, workflow: str, *args: str) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", f"{workflow}.serve", *args, "--port", str(self.port)]
        # A session of its own: LitServe's worker processes are stopped with it, whatever happens to the test.
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stdout.read()[-3000:]
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the server did not answer /health within 60 s")

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            # A body refused for its size: the answer is sent before the body was read whole.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.request(method, path, body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def get(self, path: str):
        return self.request("GET", path)

    def predict(self, payload) -> tuple[int, dict]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, reply = self.request("POST", "/predict", body)
        return status, json.loads(reply)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        """Every process of the server's session, if any is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def fashion(tiny_fashion):
    return tiny_fashion[1]


def png(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray((pixels * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_fashion_server_answers_refuses_stops_and_restarts_the_same(fashion):
    rng = np.random.default_rng(0)
    good = {
        "inputs": [png(rng.random((28, 28))), rng.random((28, 28)).tolist(), png(rng.random((40, 30)))],
        "resize": True,
    }
    server = Server("fashion_cnn", "--ckpt", str(fashion))
    try:
        status, before = server.predict(good)
        assert status == 200 and len(before["predictions"]) == 3
        first = before["predictions"][0]
        assert set(first) == {"label", "probabilities", "note"} and len(first["probabilities"]) == 10
        assert first["label"] == max(first["probabilities"], key=first["probabilities"].get)
        assert before["predictions"][2]["note"] == "resized from 30x40"
        status, page = server.get("/")
        assert status == 200 and b"<html" in page

        bad = {
            "invalid JSON": (b'{"inputs": [', 400, "not valid JSON"),
            "no inputs field": ({"images": []}, 422, "inputs: Field required"),
            "not an image": ({"inputs": [base64.b64encode(b"hello").decode()]}, 422, "not a readable PNG or JPEG"),
            "not base64": ({"inputs": ["@@@"]}, 422, "neither a base64 PNG/JPEG image"),
            "wrong size": ({"inputs": [png(rng.random((40, 30)))]}, 422, "not 28x28; send resize: true"),
            "wrong array": ({"inputs": [[[0.5, 0.5]]]}, 422, "a 1 x 2 array, not 28 x 28"),
            "not UTF-8": (b'{"inputs": ["\xff\xfe"]}', 400, "error parsing the body"),
            "over 5 MB": (b"[" + b" " * (6 * 1024 * 1024) + b"]", 413, "Payload too large"),
            "10,000 inputs": ({"inputs": ["@"] * 10_000}, 413, "10000 inputs in one request"),
        }
        for case, (payload, code, message) in bad.items():
            status, reply = server.predict(payload)
            assert status == code and message in reply["detail"] and "\n" not in reply["detail"], case
        assert server.predict(good) == (200, before)  # still serving, the same answer

        # SIGTERM while a long request is in flight: it is answered, and the server exits 0.
        heavy = {"inputs": [png(rng.random((40, 40)))] * 1000, "resize": True}  # about 3 MB, a second to decode
        answers = []
        client = threading.Thread(target=lambda: answers.append(server.predict(heavy)[0]))
        client.start()
        time.sleep(0.3)
        assert server.stop() == 0
        client.join(timeout=30)
        assert answers == [200]
    finally:
        server.kill()
    restarted = Server("fashion_cnn", "--ckpt", str(fashion))
    try:
        assert restarted.predict(good) == (200, before)
        assert restarted.stop() == 0
    finally:
        restarted.kill()


def test_sst2_server_of_an_export_reads_sentences(sst2_exported):
    server = Server("sst2_bilstm", "--model", str(sst2_exported))
    try:
        status, reply = server.predict({"inputs": ["good the film is", "zzzz"]})
        assert status == 200 and [p["note"] for p in reply["predictions"]] == ["", "no known word"]
        assert set(reply["predictions"][0]["probabilities"]) == {"negative", "positive"}
        assert server.predict({"inputs": "good the film is"})[1]["predictions"] == reply["predictions"][:1]
        for payload, message in (
            ({"inputs": ["fine", "  "]}, "input 1 is an empty sentence"),
            ({"inputs": [[[0.5]]]}, "input 0 is not a sentence"),
        ):
            status, refused = server.predict(payload)
            assert status == 422 and message in refused["detail"]
        status, refused = server.request("POST", "/predict", b"inputs=fine", "application/x-www-form-urlencoded")
        assert status == 415 and b"Content-Type: application/json" in refused
        assert server.stop() == 0
    finally:
        server.kill()

"""Both workflows behind LitServe on 127.0.0.1: answers, refusals that leave the server serving, a clean stop on
SIGTERM, and the same answers after a restart."""

import base64
import contextlib
import functools
import http.client
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from common.decoding import MAX_PIXELS
from common.deploy.contract import API_KEY_VARIABLE
from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``python -m <workflow>.serve ...`` on a free port of 127.0.0.1, up once /health answers 200."""

    def __init__(self, workflow: str, *args: str, key: str | None = None) -> None:
        self.port, self.key = free_port(), key
        command = [sys.executable, "-m", f"{workflow}.serve", *args, "--port", str(self.port)]
        env = {k: v for k, v in os.environ.items() if k != API_KEY_VARIABLE} | ({API_KEY_VARIABLE: key} if key else {})
        # A session of its own: LitServe's worker processes are stopped with it, whatever happens to the test.
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
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

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json", key=None
    ):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": content_type} | ({"X-API-Key": key or self.key} if key or self.key else {})
        try:
            # A body refused for its size: the answer is sent before the body was read whole.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def get(self, path: str):
        return self.request("GET", path)

    def predict(self, payload, key=None) -> tuple[int, dict]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, reply = self.request("POST", "/predict", body, key=key)
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
            "not an image": ({"inputs": [base64.b64encode(b"hello").decode()]}, 422, "not a PNG or JPEG image"),
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
            ({"inputs": [[[0.5]]]}, "input 0 is a list, not a sentence"),
        ):
            status, refused = server.predict(payload)
            assert status == 422 and message in refused["detail"]
        status, refused = server.request("POST", "/predict", b"inputs=fine", "application/x-www-form-urlencoded")
        assert status == 415 and b"Content-Type: application/json" in refused
        assert server.stop() == 0
    finally:
        server.kill()


@functools.cache
def png_bytes(width: int, height: int, bit_depth: int = 8) -> bytes:
    """A whole grayscale PNG, all black, compressed row by row: a decompression bomb when it is large (13,000 x
    13,000 pixels, 169 MB decoded, is 164 KB of PNG)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row, packer = b"\x00" * (1 + width * bit_depth // 8), zlib.compressobj()
    rows = [min(1000, height - start) for start in range(0, height, 1000)]
    pixels = b"".join(packer.compress(row * n) for n in rows) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def broken_png() -> bytes:
    """A 28x28 PNG cut halfway through its pixel data and followed by a chunk of no known kind: Pillow raises
    SyntaxError for it, beside the OSError and ValueError of other damage."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    buffer = io.BytesIO()
    Image.fromarray(np.arange(784, dtype=np.uint8).reshape(28, 28)).save(buffer, format="PNG")
    whole = buffer.getvalue()
    header, pixels = whole[16:29], whole[whole.index(b"IDAT") + 4 : whole.index(b"IEND") - 8]
    return (
        whole[:8]
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels[: len(pixels) // 2])
        + bytes([0, 0, 0, 16, 1, 2, 3, 4])
        + bytes(20)
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_bad_request_is_refused_alone_whatever_is_batched_with_it(fashion_exported):
    """Good and bad requests from many clients at once, into batches of up to 64 that wait 50 ms to fill: every
    good one gets the answer it gets alone, every bad one its own refusal."""
    rng = np.random.default_rng(0)
    good = {"inputs": [png(rng.random((28, 28)))]}
    bad = {  # refused as the JSON is read, and refused by the model's worker, inside the batch
        "a 5 x 5 array": ({"inputs": [rng.random((5, 5)).tolist()]}, 422, "input 0 is a 5 x 5 array"),
        "no image": ({"inputs": [b64(b"hello")]}, 422, "input 0 is not a PNG or JPEG image"),
        "too many pixels": ({"inputs": [b64(png_bytes(13_000, 13_000))]}, 413, f"over {MAX_PIXELS:,} pixels"),
        "too many in all": ({"inputs": [b64(png_bytes(4_000, 4_000))] * 2, "resize": True}, 413, "pixels in all"),
        "a broken PNG": ({"inputs": [b64(broken_png())]}, 422, "input 0 is not a readable PNG or JPEG image"),
        "a huge integer": ({"inputs": [[[1] * 27 + [10**400]] * 28]}, 422, "input 0 has pixels outside [0, 1]"),
        "not 28x28": ({"inputs": [good["inputs"][0], png(rng.random((30, 30)))]}, 422, "input 1 is 30x30"),
    }
    server = Server("fashion_cnn", "--model", str(fashion_exported), "--batch-timeout", "0.05")
    try:
        alone = server.predict(good)
        assert alone[0] == 200
        kinds = ["good", *bad] * 2
        answers: list = []

        def client(offset: int) -> None:
            for kind in kinds[offset:] + kinds[:offset]:
                answers.append((kind, server.predict(good if kind == "good" else bad[kind][0])))

        threads = [threading.Thread(target=client, args=(i % len(kinds),)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(answers) == 16 * len(kinds)
        for kind, (status, reply) in answers:
            if kind == "good":
                assert (status, reply) == alone
            else:
                assert status == bad[kind][1] and bad[kind][2] in reply["detail"], (kind, status, reply)
        assert server.stop() == 0
    finally:
        server.kill()


def test_sst2_server_refuses_text_it_cannot_read_and_text_over_its_limits(sst2_exported):
    from sst2_bilstm.serve import MAX_CHARACTERS, MAX_SENTENCE

    server = Server("sst2_bilstm", "--model", str(sst2_exported))
    try:
        cases = [
            (b'{"inputs": ["great \\ud800 film"]}', 422, "input 0 is not valid Unicode: a lone surrogate (U+D800)"),
            ({"inputs": ["fine", "a" * (MAX_SENTENCE + 1)]}, 413, f"input 1 is {MAX_SENTENCE + 1:,} characters"),
            ({"inputs": ["a" * MAX_SENTENCE] * (MAX_CHARACTERS // MAX_SENTENCE + 1)}, 413, "characters in all"),
            ({"inputs": None}, 422, "inputs is null"),
            ({"inputs": {"text": "fine"}}, 422, "inputs is an object"),
            ({"inputs": ["fine", True]}, 422, "input 1 is a boolean, not a sentence"),
        ]
        for payload, code, message in cases:
            status, reply = server.predict(payload)
            assert status == code and message in reply["detail"], (payload if len(str(payload)) < 99 else code, reply)
        assert server.predict({"inputs": ["a" * MAX_SENTENCE]})[0] == 200  # the limit itself is served
        assert server.stop() == 0
    finally:
        server.kill()


@pytest.mark.parametrize("workflow", ["fashion_cnn", "sst2_bilstm"])
def test_a_schema_driven_fuzzer_finds_the_api_as_documented(workflow, request, tmp_path):
    """schemathesis generates requests from /openapi.json, valid and not, and checks every answer against it: no
    5xx, no status, media type or body the schema does not document, and schema-violating requests refused with
    a documented refusal. Only positive_data_acceptance is left out: a string the schema allows is not always an
    image."""
    export = request.getfixturevalue(f"{workflow.split('_')[0]}_exported")
    config = tmp_path / "schemathesis.toml"
    config.write_text('[checks.negative_data_rejection]\nexpected-statuses = ["400", "413", "415", "422"]\n')
    server = Server(workflow, "--model", str(export))
    try:
        command = [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()"]
        command += ["--config-file", str(config), "run", f"http://127.0.0.1:{server.port}/openapi.json"]
        command += ["--checks", "all", "--exclude-checks", "positive_data_acceptance", "--max-examples", "20"]
        command += ["--generation-deterministic", "--continue-on-failure", "--request-timeout", "30", "--no-color"]
        fuzzed = subprocess.run(
            command, capture_output=True, text=True, timeout=240, cwd=tmp_path, env=os.environ | {"NO_COLOR": "1"}
        )
        assert fuzzed.returncode == 0, fuzzed.stdout[-4000:] + fuzzed.stderr[-2000:]
        assert "4 selected / 4 total" in fuzzed.stdout  # /predict, /health, /info and the page
        assert server.stop() == 0
    finally:
        server.kill()


def test_a_key_guards_the_model_and_the_network_needs_one(fashion_exported):
    key = "a-test-key-of-some-length"
    server = Server("fashion_cnn", "--model", str(fashion_exported), key=key)
    try:
        good = {"inputs": [np.full((28, 28), 0.5).tolist()]}
        assert server.predict(good)[0] == 200

        def without_key(method: str, path: str, wrong: str = "") -> tuple[int, bytes]:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            headers = {"Content-Type": "application/json"} | ({"X-API-Key": wrong} if wrong else {})
            body = json.dumps(good) if method == "POST" else None
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        for wrong in ("", "not-the-key"):
            for method, path in (("POST", "/predict"), ("GET", "/health"), ("GET", "/info")):
                status, body = without_key(method, path, wrong)
                assert status == 401 and "detail" in json.loads(body), (method, path, wrong)
        schema = json.loads(server.get("/openapi.json")[1])
        assert "401" in schema["paths"]["/predict"]["post"]["responses"]
        # The page loads without the key, and then asks the user for it (its own requests send it).
        status, page = without_key("GET", "/")
        assert status == 200 and page.lstrip().lower().startswith(b"<!doctype html")
        assert server.stop() == 0
    finally:
        server.kill()

    # Refused before anything listens: in a process of its own, bounded in time, should that ever change.
    command = [sys.executable, "-m", "fashion_cnn.serve", "--model", str(fashion_exported), "--host", "0.0.0.0"]
    env = {k: v for k, v in os.environ.items() if k != API_KEY_VARIABLE}
    refused = subprocess.run(
        [*command, "--port", str(free_port())], capture_output=True, text=True, env=env, timeout=60
    )
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert (
        f"--host 0.0.0.0 opens the model to the network: set a key first, e.g. export {API_KEY_VARIABLE}"
        in refused.stderr
    )

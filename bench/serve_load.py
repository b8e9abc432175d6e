"""A served model under load: N concurrent clients on loopback, each sending single-input requests one after
the other for a fixed time; each phase ends by itself. Reports requests per second, latency percentiles, errors,
and the server's resident memory at the start and at the end (its process and all its children).

    python bench/serve_load.py --workflow fashion_cnn --model exported/fashion            # against the no-op server
    python bench/serve_load.py --workflow fashion_cnn --ckpt runs/.../last.ckpt --max-batch-size 1 --no-noop

The ceiling is LitServe itself: with ``--noop`` (the default), a LitServe server that does no work at all (same
settings: batch size and timeout, one worker, the body limit; the same client and request bodies) runs in
alternating phases with the model's server, ``--rounds`` of each, and the ratio of their median requests/s is
printed. Servers listen on a free port of 127.0.0.1 and are stopped with SIGTERM. Prints a table and writes JSON.
"""

import argparse
import base64
import contextlib
import http.client
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import litserve as ls
import numpy as np
from bench_io import write_result
from PIL import Image

from common.deploy.contract import MAX_BODY
from common.deploy.serve import stop_on_sigterm

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resident_mib(pid: int) -> float:
    """Resident memory of a process and its descendants (Linux /proc), MiB."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
        pending += [int(child) for child in children]
    return total / 1024


def example_body(workflow: str) -> bytes:
    if workflow == "fashion_cnn":
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)).save(buffer, "PNG")
        return json.dumps({"inputs": [base64.b64encode(buffer.getvalue()).decode()]}).encode()
    return json.dumps({"inputs": ["a gorgeous, witty and moving film"]}).encode()


class NoOp(ls.LitAPI):
    """A LitServe API that does no work: the request's JSON is read, and a constant answer sent."""

    def setup(self, device) -> None:
        pass

    def decode_request(self, request):
        return request

    def predict(self, batch):
        return batch

    def encode_response(self, output) -> dict:
        return {"predictions": [{"label": "none", "probabilities": {}, "note": ""}]}


def serve_noop(port: int, max_batch_size: int, batch_timeout: float) -> None:
    """The no-op API with the model server's settings: one worker on the CPU, its body limit, its batching."""
    api = NoOp(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, max_payload_size=MAX_BODY)
    stop_on_sigterm()
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")


def client(port: int, body: bytes, until: float, limit: int, latencies: list, errors: list) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(limit):
        if time.monotonic() >= until:
            break
        start = time.perf_counter()
        try:
            connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors.append(response.status)
            latencies.append(time.perf_counter() - start)
        except OSError as error:
            errors.append(type(error).__name__)
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.close()


def concurrently(target, clients: int, *args) -> float:
    """``target(*args)`` in ``clients`` threads at once; the seconds until the last one returns."""
    threads = [threading.Thread(target=target, args=args) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


class Served:
    """A server process on a free port of 127.0.0.1, up once /health answers 200; stopped with SIGTERM."""

    def __init__(self, command: list[str], port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    return
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise SystemExit(f"the server did not come up: {' '.join(command)}")
            time.sleep(0.2)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):  # whatever LitServe left of its session
                os.killpg(self.process.pid, signal.SIGKILL)


def load_phase(served: Served, body: bytes, args: argparse.Namespace) -> dict:
    """Warm-up, then ``args.clients`` clients for ``args.seconds``: the phase's figures."""
    client(served.port, body, time.monotonic() + 2, 50, [], [])
    memory_start = resident_mib(served.process.pid)
    latencies: list = []
    errors: list = []
    until = time.monotonic() + args.seconds
    elapsed = concurrently(client, args.clients, served.port, body, until, args.max_requests, latencies, errors)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * q[49],
        "p95_ms": 1000 * q[94],
        "p99_ms": 1000 * q[98],
        "errors": len(errors),
        "rss_start_mib": memory_start,
        "rss_end_mib": resident_mib(served.process.pid),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", choices=("fashion_cnn", "sst2_bilstm"))
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--ckpt")
    weights.add_argument("--model")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15, help="of each phase")
    parser.add_argument("--rounds", type=int, default=3, help="phases of each server, alternating")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per client and phase, besides the time")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    parser.add_argument("--noop", action=argparse.BooleanOptionalAction, default=True, help="compare with no-op")
    parser.add_argument("--serve-noop", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the no-op's process
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    if args.serve_noop:
        return serve_noop(args.serve_noop, args.max_batch_size, args.batch_timeout)
    if not args.workflow or not (args.ckpt or args.model):
        parser.error("--workflow and one of --ckpt / --model are required")

    settings = ["--max-batch-size", str(args.max_batch_size), "--batch-timeout", str(args.batch_timeout)]
    model_port, noop_port = free_port(), free_port()
    weights = ["--ckpt", args.ckpt] if args.ckpt else ["--model", args.model]
    commands = {"model": [sys.executable, "-m", f"{args.workflow}.serve", *weights, "--port", str(model_port)]}
    commands["model"] += settings
    if args.noop:
        commands["noop"] = [sys.executable, str(Path(__file__).resolve()), "--serve-noop", str(noop_port), *settings]
    ports = {"model": model_port, "noop": noop_port}
    body = example_body(args.workflow)
    servers = {}
    phases: dict[str, list[dict]] = {name: [] for name in commands}
    try:
        for name, command in commands.items():
            servers[name] = Served(command, ports[name])
        for _ in range(args.rounds):
            for name in commands:  # alternating, so that both see the machine's same drift
                phases[name].append(load_phase(servers[name], body, args))
    finally:
        exit_statuses = {name: served.stop() for name, served in servers.items()}

    def median(name: str, key: str) -> float:
        return statistics.median(phase[key] for phase in phases[name])

    weights_kind = "checkpoint" if args.ckpt else "export"
    print(
        "| server | max_batch_size | requests/s (median) | p50 ms | p95 ms | p99 ms | errors | RSS start -> end MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name in commands:
        label = f"{args.workflow}, {weights_kind}" if name == "model" else "LitServe doing nothing"
        last = phases[name][-1]
        print(
            f"| {label} | {args.max_batch_size} | {median(name, 'requests_per_s'):,.0f} | {median(name, 'p50_ms'):.1f} "
            f"| {median(name, 'p95_ms'):.1f} | {median(name, 'p99_ms'):.1f} "
            f"| {sum(p['errors'] for p in phases[name])} | {phases[name][0]['rss_start_mib']:,.0f} -> "
            f"{last['rss_end_mib']:,.0f} |"
        )
    result = {
        "workflow": args.workflow,
        "weights": weights_kind,
        "max_batch_size": args.max_batch_size,
        "batch_timeout": args.batch_timeout,
        "clients": args.clients,
        "phases": phases,
        "server_exit_status": exit_statuses,
    }
    if args.noop:
        result["ratio_to_noop"] = median("model", "requests_per_s") / median("noop", "requests_per_s")
        each = [m["requests_per_s"] / n["requests_per_s"] for m, n in zip(phases["model"], phases["noop"])]
        result["ratio_each_round"] = each
        rounds = ", ".join(f"{r:.2f}" for r in each)
        median_each = statistics.median(each)
        print(
            f"model / no-op requests/s: {result['ratio_to_noop']:.2f}x; each round {rounds} (median {median_each:.2f}x)"
        )
    write_result(result, args.output, f"serve_load_{args.workflow}_{weights_kind}_batch{args.max_batch_size}")


if __name__ == "__main__":
    main()

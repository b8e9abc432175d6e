"""A served model under load: N concurrent clients on loopback, each sending single-input requests one after
the other for a fixed time; the run ends by itself. Reports requests per second, latency percentiles, errors,
and the server's resident memory at the start and at the end (its process and all its children).

    python bench/serve_load.py --workflow fashion_cnn --ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt
    python bench/serve_load.py --workflow fashion_cnn --ckpt ... --max-batch-size 1    # batching off

The server is started by this script (``python -m <workflow>.serve``) on a free port of 127.0.0.1, and stopped
with SIGTERM at the end. Prints a table row and writes JSON.
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

import numpy as np
from bench_io import write_result
from PIL import Image

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", choices=("fashion_cnn", "sst2_bilstm"), required=True)
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt")
    weights.add_argument("--model")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--max-requests", type=int, default=100_000, help="per client, a bound besides the time")
    parser.add_argument("--max-batch-size", type=int)
    parser.add_argument("--batch-timeout", type=float)
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    port = free_port()
    command = [sys.executable, "-m", f"{args.workflow}.serve", "--port", str(port)]
    command += ["--ckpt", args.ckpt] if args.ckpt else ["--model", args.model]
    if args.max_batch_size is not None:
        command += ["--max-batch-size", str(args.max_batch_size)]
    if args.batch_timeout is not None:
        command += ["--batch-timeout", str(args.batch_timeout)]
    server = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not come up")
            time.sleep(0.2)
        body = example_body(args.workflow)
        warm: list = []
        client(port, body, time.monotonic() + 2, 50, warm, [])
        memory_start = resident_mib(server.pid)
        latencies, errors = [], []
        until = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=client, args=(port, body, until, args.max_requests, latencies, errors))
            for _ in range(args.clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        memory_end = resident_mib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        exit_status = server.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):  # whatever LitServe left of its session
            os.killpg(server.pid, signal.SIGKILL)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    result = {
        "workflow": args.workflow,
        "weights": "checkpoint" if args.ckpt else "export",
        "max_batch_size": args.max_batch_size,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * q[49],
        "p95_ms": 1000 * q[94],
        "p99_ms": 1000 * q[98],
        "errors": len(errors),
        "rss_start_mib": memory_start,
        "rss_end_mib": memory_end,
        "server_exit_status": exit_status,
    }
    print(
        "| workflow | weights | max_batch_size | requests/s | p50 ms | p95 ms | p99 ms | errors | RSS start -> end MiB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {args.workflow} | {result['weights']} | {args.max_batch_size or 'default'} | {result['requests_per_s']:,.0f} "
        f"| {result['p50_ms']:.1f} | {result['p95_ms']:.1f} | {result['p99_ms']:.1f} | {result['errors']} "
        f"| {memory_start:,.0f} -> {memory_end:,.0f} |"
    )
    name = f"serve_load_{args.workflow}_{result['weights']}_batch{args.max_batch_size or 'default'}"
    write_result(result, args.output, name)


if __name__ == "__main__":
    main()

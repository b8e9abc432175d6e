"""What a refusal costs the server: time and resident memory (its process and all its children) to refuse an
input over a stated limit, alone and from many clients at once.

    python bench/serve_refusals.py --fashion-model exported/fashion --sst2-model exported/sst2

Fashion-MNIST: a 13,000 x 13,000 grayscale PNG (164 KB of file, 169 MB decoded); SST-2: a 4.9 MB sentence. Each
is sent once alone (time and memory after), then by ``--clients`` clients ``--each`` times each while the
server's memory is sampled every 20 ms (peak). The servers listen on a free port of 127.0.0.1. Prints a table
and writes JSON.
"""

import argparse
import base64
import functools
import http.client
import json
import statistics
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

from bench_io import write_result
from serve_load import Served, concurrently, free_port, resident_mib


@functools.cache
def png_bomb(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row, packer = b"\x00" * (1 + width), zlib.compressobj()
    pixels = b"".join(packer.compress(row * min(1000, height - y)) for y in range(0, height, 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def post(port: int, body: bytes) -> tuple[int, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, time.perf_counter() - start


def measure(served: Served, body: bytes, clients: int, each: int) -> dict:
    pid = served.process.pid
    post(served.port, body)  # the first request of a server warms up code paths, not the case measured
    before = resident_mib(pid)
    status, alone = post(served.port, body)
    after_one = resident_mib(pid)
    peak, done = [after_one], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak.append(resident_mib(pid))

    latencies: list[float] = []
    statuses: set[int] = set()

    def client() -> None:
        for _ in range(each):
            code, seconds = post(served.port, body)
            statuses.add(code)
            latencies.append(seconds)

    sampler = threading.Thread(target=sample)
    sampler.start()
    elapsed = concurrently(client, clients)
    done.set()
    sampler.join()
    return {
        "status": status,
        "statuses_under_load": sorted(statuses),
        "body_bytes": len(body),
        "alone_s": alone,
        "rss_before_mib": before,
        "rss_growth_alone_mib": after_one - before,
        "requests_under_load": len(latencies),
        "refusals_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "max_ms": 1000 * max(latencies),
        "rss_peak_growth_mib": max(peak) - before,
        "rss_end_growth_mib": resident_mib(pid) - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion-model", help="a folder written by fashion-cnn-export (or a checkpoint)")
    parser.add_argument("--sst2-model", help="a folder written by sst2-bilstm-export (or a checkpoint)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--each", type=int, default=10)
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    cases = []
    if args.fashion_model:
        image = base64.b64encode(png_bomb(13_000, 13_000)).decode()
        cases.append(("fashion_cnn", args.fashion_model, "13,000 x 13,000 PNG", {"inputs": [image], "resize": True}))
    if args.sst2_model:
        cases.append(("sst2_bilstm", args.sst2_model, "4.9 MB sentence", {"inputs": ["great film " * 445_000]}))
    results = {}
    for workflow, weights, name, payload in cases:
        flag = "--model" if Path(weights).is_dir() else "--ckpt"
        port = free_port()
        served = Served([sys.executable, "-m", f"{workflow}.serve", flag, weights, "--port", str(port)], port)
        try:
            results[name] = {
                "workflow": workflow,
                **measure(served, json.dumps(payload).encode(), args.clients, args.each),
            }
        finally:
            served.stop()
    print(
        "| input | status | alone: s | alone: RSS growth MiB | refusals/s under load | p50 ms | max ms | peak RSS growth MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['status']} | {r['alone_s']:.3f} | {r['rss_growth_alone_mib']:.1f} | "
            f"{r['refusals_per_s']:.0f} | {r['p50_ms']:.0f} | {r['max_ms']:.0f} | {r['rss_peak_growth_mib']:.1f} |"
        )
    write_result(results, args.output, "serve_refusals")


if __name__ == "__main__":
    main()

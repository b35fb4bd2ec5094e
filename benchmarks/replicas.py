"""Throughput of one public replica against three, behind nginx on this machine.

Run by hand, never by the test suite::

    .venv/bin/python benchmarks/replicas.py                      # DistilBERT-size model, 20 s per round
    .venv/bin/python benchmarks/replicas.py --tiny --seconds 5   # a quick run

Three ``pipedesk serve --public --models-dir DIR`` processes (real CLI processes, one shared
read-only models folder with the model ``serving.py`` builds) and Debian's nginx with the README's
sticky-session recipe, on two ports: one whose pool is replica r1 alone, one whose pool is all
three. For each number of clients (``--clients``), rounds alternate between the two (1, 3, 1, 3...),
so a machine that slows down slows both alike. Each client is an ``httpx.AsyncClient`` with its
own cookie jar (it keeps the ``pipedesk_replica`` cookie, as a browser does) sending the REST call
(``POST /gradio_api/call/sentiment`` + its event stream) back to back. Prints requests per second,
p50/p95, errors, how the requests spread over the replicas, the ratio 3 : 1 side by side, and each
replica's resident memory before its first request and after it loaded the model (the sizing line).

Threads: the main thread and one asyncio loop; the replicas are processes of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import serving

READY_LINE = "Ctrl+C to stop"
#: The ``http {}`` block: two front ports, one whose pool is r1 alone, one whose pool is all three.
NGINX_HTTP = """
    access_log off;
    upstream one { server 127.0.0.1:P1; }
    upstream three { server 127.0.0.1:P1; server 127.0.0.1:P2; server 127.0.0.1:P3; }
    map $cookie_pipedesk_replica $replica { default ""; r1 127.0.0.1:P1; r2 127.0.0.1:P2; r3 127.0.0.1:P3; }
    map $replica $to_one { default $replica; "" one; }
    map $replica $to_three { default $replica; "" three; }
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header Connection "";
    proxy_buffering off;
    proxy_read_timeout 600s;
    server { listen 127.0.0.1:ONE; location / { proxy_pass http://$to_one; } }
    server { listen 127.0.0.1:THREE; location / { proxy_pass http://$to_three; } }
"""


def resident_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


def start_replicas(models: Path, work: Path, device: str) -> dict[str, tuple[subprocess.Popen, int]]:
    """Three public replicas on the shared read-only ``models`` folder; returns once all answer."""
    started = {}
    for rid in ("r1", "r2", "r3"):
        port = serving.free_port()
        env = {**os.environ, "PIPEDESK_HOME": str(work / rid)}
        command = [sys.executable, "-m", "desktop", "serve", "--public", "--port", str(port)]
        command += ["--models-dir", str(models), "--replica-id", rid, "--device", device]
        process = subprocess.Popen(
            command, cwd=serving.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started[rid] = (process, port)
    for rid, (process, _port) in started.items():
        for line in process.stdout:
            if READY_LINE in line:
                break
        else:
            sys.exit(f"replica {rid} exited before it was ready")
        # Keep reading its output, so its log lines never fill the pipe and stop it.
        threading.Thread(target=lambda out=process.stdout: [None for _ in out], daemon=True).start()
    return started


async def one_client(url: str, model_id: str, deadline: float, offset: int, stats: dict) -> float:
    import httpx

    last = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as http:
        sent = 0
        while time.perf_counter() < deadline:
            text = serving.TEXTS[(offset + sent) % len(serving.TEXTS)]
            started = time.perf_counter()
            try:
                answer = await http.post(
                    f"{url}gradio_api/call/{serving.API}", json={"data": [text, model_id]}
                )
                answer.raise_for_status()
                stats["replicas"][answer.headers.get("x-pipedesk-replica", "?")] += 1
                event = answer.json()["event_id"]
                async with http.stream("GET", f"{url}gradio_api/call/{serving.API}/{event}") as stream:
                    serving.parse_events([line async for line in stream.aiter_lines()])
            except Exception as exc:  # counted; the load goes on
                stats["errors"] += 1
                stats["first_error"] = stats["first_error"] or f"{type(exc).__name__}: {exc}"[:200]
            else:
                last = time.perf_counter()
                stats["seconds"].append(last - started)
            sent += 1
    return last


async def round_of(url: str, model_id: str, clients: int, seconds: float) -> dict:
    stats: dict = {"seconds": [], "errors": 0, "first_error": "", "replicas": Counter()}
    start = time.perf_counter()
    ends = await asyncio.gather(
        *(one_client(url, model_id, start + seconds, i, stats) for i in range(clients))
    )
    stats["elapsed"] = max(ends) - start
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny SST-2 model")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per round (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per configuration (default 2)")
    parser.add_argument("--clients", default="4,12", help="concurrent clients, comma list (default 4,12)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    import shutil

    from tests.support.nginx import start_nginx, stop_nginx

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.exit("nginx is not installed (apt-get install nginx-light)")
    _folder, model_id = serving.prepare(args.tiny)
    from desktop import settings

    models = settings.models_dir()
    work = Path(os.environ["PIPEDESK_HOME"]).parent
    serving.describe(args.tiny)
    replicas = start_replicas(models, work, args.device)
    ports = {rid: port for rid, (_p, port) in replicas.items()}
    one, three = serving.free_port(), serving.free_port()
    http = NGINX_HTTP.replace("ONE", str(one)).replace("THREE", str(three))
    for rid, port in ports.items():
        http = http.replace(f"P{rid[1]}", str(port))
    proxy = start_nginx(work / "nginx", http, one)
    try:
        import httpx

        before = {rid: resident_mb(p.pid) for rid, (p, _port) in replicas.items()}
        for port in ports.values():  # each replica loads the model once before the clock starts
            serving.call(httpx.Client(timeout=120), f"http://127.0.0.1:{port}/", [serving.TEXTS[0], model_id])
        loaded = {rid: resident_mb(p.pid) for rid, (p, _port) in replicas.items()}
        print(f"Replicas: 3 x `pipedesk serve --public --models-dir` (device {args.device}), nginx {nginx}")
        for rid in ports:
            print(
                f"  {rid}: resident {before[rid]:,.0f} MB started, {loaded[rid]:,.0f} MB with the model loaded"
            )
        print()
        print("| replicas | clients | requests/s | p50 (ms) | p95 (ms) | errors | requests per replica |")
        print("|---:|---:|---:|---:|---:|---:|---|")
        ratios = []
        for clients in [int(c) for c in args.clients.split(",")]:
            totals = {1: [0, 0.0], 3: [0, 0.0]}
            for n in range(args.rounds * 2):
                count = 1 if n % 2 == 0 else 3
                url = f"http://127.0.0.1:{one if count == 1 else three}/"
                stats = asyncio.run(round_of(url, model_id, clients, args.seconds))
                done = len(stats["seconds"])
                totals[count][0] += done
                totals[count][1] += stats["elapsed"]
                spread = ", ".join(f"{k} {v}" for k, v in sorted(stats["replicas"].items()))
                p50, p95 = (serving.percentile(stats["seconds"], p) * 1000 for p in (50, 95))
                print(
                    f"| {count} | {clients} | {done / stats['elapsed']:.1f} | {p50:,.0f} | {p95:,.0f} | "
                    f"{stats['errors']} | {spread} |"
                )
                if stats["first_error"]:
                    print(f"  first error: {stats['first_error']}")
            rate = {count: done / elapsed for count, (done, elapsed) in totals.items()}
            ratios.append((clients, rate[1], rate[3]))
        print()
        for clients, single, triple in ratios:
            print(
                f"{clients} clients: 1 replica {single:.1f} req/s, 3 replicas {triple:.1f} req/s: "
                f"{triple / single:.2f}x"
            )
        print(f"Load average after: {serving.load_average()}")
    finally:
        stop_nginx(proxy)
        for process, _port in replicas.values():
            process.terminate()
        for process, _port in replicas.values():
            process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Time from start to the UI being served: the built app next to ``python -m desktop``.

    .venv/bin/python build/measure.py [--runs N] [--app dist/Pipedesk/Pipedesk]

Each run starts ``serve --port P`` with an empty ``PIPEDESK_HOME`` and
``HF_HUB_OFFLINE=1``, polls ``http://127.0.0.1:P/`` until the page answers,
records the seconds since launch, and stops the process. Both are measured in
the same run on the same machine, alternating, so a busy machine slows both.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen) -> None:
    """Ask politely (Ctrl+C), then insist."""
    if process.poll() is not None:
        return
    if sys.platform == "win32":
        process.terminate()
    else:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def time_to_ui(command: list[str], timeout: float = 300.0) -> float:
    """Seconds from launching ``command serve --port P`` until ``/`` answers 200."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pipedesk-measure-") as home:
        env = {**os.environ, "PIPEDESK_HOME": home, "HF_HUB_OFFLINE": "1"}
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while time.perf_counter() - started < timeout:
                if process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited with code {process.returncode} before serving")
                try:
                    with _OPENER.open(f"http://127.0.0.1:{port}/", timeout=2) as response:
                        if response.status == 200:
                            return time.perf_counter() - started
                except (urllib.error.URLError, OSError):
                    pass
                time.sleep(0.05)
            raise RuntimeError(f"{command[0]} did not serve the UI within {timeout:.0f}s")
        finally:
            stop(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="measure.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="starts of each (default 2)")
    app_name = "Pipedesk.exe" if sys.platform == "win32" else "Pipedesk"
    parser.add_argument("--app", type=Path, default=ROOT / "dist" / "Pipedesk" / app_name)
    args = parser.parse_args(argv)
    if not args.app.is_file():
        print(f"measure: error: {args.app} does not exist: build it first (build/build.py).", file=sys.stderr)
        return 2
    targets = {"packaged app": [str(args.app)], "python -m desktop": [sys.executable, "-m", "desktop"]}
    times: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(args.runs):
        for name, command in targets.items():
            times[name].append(time_to_ui(command))
    print("Start to UI served (seconds; each run, then the median):")
    for name, values in times.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name:<18} {runs}  -> {statistics.median(values):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

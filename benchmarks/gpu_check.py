"""GPU path check: every task on CUDA in half precision vs the CPU in fp32, on the tiny models.

For a session lent the device tool's GPU: run it there in one call, e.g.
``python benchmarks/gpu_check.py``. It builds the tiny test models, runs each task
once on each device through the real Runtime (local folders, no network), and
prints per task: the dtype used, whether the outputs agree, and the latencies.
Exits 1 if a task fails or disagrees beyond tolerance; 0 with a note if no GPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for desktop and tests.support
os.environ.setdefault("PIPEDESK_HOME", tempfile.mkdtemp(prefix="pipedesk-gpu-"))

import desktop  # noqa: E402,F401  (sets the environment first)


def main() -> int:
    import torch

    from desktop.engine.runtime import Runtime
    from desktop.tasks import TASKS
    from tests.support.tiny_models import cached_models

    target = sys.argv[1] if len(sys.argv) > 1 else "cuda"  # "cpu" dry-runs the script itself
    if target.startswith("cuda") and not torch.cuda.is_available():
        print("No CUDA GPU here: nothing to check.")
        return 0
    models = cached_models()
    m = {repo.split("/")[-1]: str(path) for repo, path in models.items()}
    from PIL import Image

    picture = Path(tempfile.mkdtemp()) / "blue.png"
    Image.new("RGB", (64, 64), (20, 40, 220)).save(picture)
    calls = {
        "sentiment": ("I love this product!", m["distilbert-base-uncased-finetuned-sst-2-english"]),
        "ner": (
            "My name is Clara and I live in Berkeley, California.",
            m["bert-large-cased-finetuned-conll03-english"],
        ),
        "generate": ("Once upon a time", m["gpt2"], 12, 0.0, 1.0, -1),
        "classify": ("Image", None, str(picture), m["vit-base-patch16-224"]),
        "translate": ("Hello, how are you?", m["opus-mt-en-fr"]),
        "summarize": (
            "The town council met on Monday and agreed a new budget. " * 4,
            m["distilbart-cnn-12-6"],
            5,
            30,
        ),
    }
    cpu, gpu = Runtime(device="cpu"), Runtime(device=target)
    name = torch.cuda.get_device_name(0) if target.startswith("cuda") else target
    print(f"Device: {name} ({gpu.device}); dtype there: {gpu.status.dtype}")
    failures = 0
    for task, args in calls.items():
        spec = TASKS[task]
        spec.predict(gpu, *args)  # warm up (load + kernels)
        t0 = time.perf_counter()
        on_cpu = spec.predict(cpu, *args)
        t1 = time.perf_counter()
        on_gpu = spec.predict(gpu, *args)
        t2 = time.perf_counter()
        same, detail = _compare(task, on_cpu.data, on_gpu.data)
        failures += not same
        print(
            f"{task:10s} agree={same!s:5s} cpu {1000 * (t1 - t0):7.1f} ms  gpu {1000 * (t2 - t1):7.1f} ms  {detail}"
        )
    return 1 if failures else 0


def _compare(task: str, a: dict, b: dict) -> tuple[bool, str]:
    if task in ("sentiment", "classify"):
        diff = max(abs(a["scores"][k] - b["scores"].get(k, 0.0)) for k in a["scores"])
        return a["label"] == b["label"] and diff < 2e-2, f"max score diff {diff:.4f}"
    if task == "ner":
        spans = lambda d: [(e["entity"], e["type"], e["start"], e["end"]) for e in d["entities"]]  # noqa: E731
        return spans(a) == spans(b), f"{len(a['entities'])} entities"
    key = {"generate": "text", "translate": "translation", "summarize": "summary"}[task]
    return a[key] == b[key], f"{a[key][:40]!r} vs {b[key][:40]!r}"


if __name__ == "__main__":
    sys.exit(main())

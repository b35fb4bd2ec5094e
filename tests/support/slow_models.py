"""Random-weight models in real shapes, slow enough here that Stop lands while they compute: the
Stop tests (tests/test_engine_process.py, tests/test_batch.py) and benchmarks/stop.py build them.
Each takes the tokenizer of a tiny test model and writes ``folder`` with ``save_pretrained``."""

from __future__ import annotations

from pathlib import Path


def slow_writer(tokenizer_source: Path, folder: Path) -> Path:
    """A GPT-2-shaped model with random weights, wide enough that 1,000 sampled tokens take seconds
    here (and with no end-of-text in sight): a generation still running when Stop is pressed."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=384, n_layer=6, n_head=6)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def slow_reader(tokenizer_source: Path, folder: Path) -> Path:
    """A DistilBERT-sized classifier (768 wide, 8 layers) with random weights: one batch of long
    reviews takes seconds here, a batch still in flight when Stop is pressed."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    labels = {0: "NEGATIVE", 1: "POSITIVE"}
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=768,
        num_hidden_layers=8,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        num_labels=2,
        id2label=labels,
        label2id={label: i for i, label in labels.items()},
    )
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.model_max_length = 512  # the tiny model's tokenizer stops at 128
    tokenizer.save_pretrained(folder)
    return folder

"""Tiny real sentence-embedding models for the Local API's ``/v1/embeddings`` (part of ``tiny_models``).

``sentence-transformers/all-MiniLM-L6-v2``: a ``BertModel`` (2 layers, 32 wide, 128 positions) with
the tests' uncased WordPiece tokenizer, saved as a sentence-transformers folder (``modules.json``,
``1_Pooling`` with mean pooling, a Normalize step, ``max_seq_length`` :data:`MAX_SEQ_LENGTH`),
trained for a second so that texts of the same :data:`TOPICS` group lie closer together than texts
of different ones. ``BAAI/bge-small-en-v1.5``: the same weights with CLS pooling (another recipe the
engine must follow exactly as sentence-transformers does). Runs on the calling thread, inside
``tiny_models``' seeded build.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

MINILM, BGE = "sentence-transformers/all-MiniLM-L6-v2", "BAAI/bge-small-en-v1.5"
EMBED_IDS = (MINILM, BGE)
MAX_SEQ_LENGTH = 48
#: Texts about the same thing: after training, each is nearer its own group than any other group.
TOPICS = (
    (
        "The parcel arrived late and the box was damaged.",
        "My delivery came two weeks after the promised date.",
        "Shipping took forever and the package was crushed.",
    ),
    (
        "How do I reset my password?",
        "I forgot my login and cannot sign in.",
        "The account page will not accept my password.",
    ),
    (
        "The soup was delicious and the bread was fresh.",
        "We had a wonderful dinner with great food.",
        "The restaurant served tasty meals at fair prices.",
    ),
)


def _modules(folder: Path, pooling: str) -> None:
    """The sentence-transformers files around the saved BertModel."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (folder / "1_Pooling").mkdir(exist_ok=True)
    modes = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token"}
    config = {"word_embedding_dimension": 32, **{key: key == modes[pooling] for key in modes.values()}}
    config.update(pooling_mode_max_tokens=False, pooling_mode_mean_sqrt_len_tokens=False)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    bert = {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(json.dumps(bert), encoding="utf-8")


def build_embedders(root: Path, seed: Any, tok: Any, name: Any) -> dict[str, Path]:
    """Build the MiniLM stand-in under ``root`` (``name(repo)`` gives each folder's name) and its
    CLS-pooled copy; ``tok`` is the tests' uncased WordPiece tokenizer (a ``tokenizers.Tokenizer``)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast(tokenizer_object=tok, do_lower_case=True, model_max_length=128)
    seed(30)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tok.token_to_id("[PAD]"),
    )
    model = BertModel(config)
    texts = [text for group in TOPICS for text in group]
    topic = torch.tensor([number for number, group in enumerate(TOPICS) for _ in group])
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    same = (topic[:, None] == topic[None, :]).float() - torch.eye(len(texts))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(120):  # a contrastive loss on mean-pooled, normalised vectors
        optimizer.zero_grad(set_to_none=True)
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
        scores = (vectors @ vectors.T / 0.1).masked_fill(torch.eye(len(texts), dtype=torch.bool), -1e4)
        loss = -(scores.log_softmax(-1) * same).sum(-1).div(same.sum(-1)).mean()
        loss.backward()
        optimizer.step()
    model.eval()
    built = {}
    for repo, pooling in ((MINILM, "mean"), (BGE, "cls")):
        folder = root / name(repo)
        if repo == MINILM:
            model.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
        else:
            shutil.copytree(built[MINILM], folder, dirs_exist_ok=True)
        _modules(folder, pooling)
        built[repo] = folder
    return built

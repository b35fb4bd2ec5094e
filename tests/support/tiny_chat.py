"""A tiny real instruct model with a chat template (served as ``Qwen/Qwen2.5-0.5B-Instruct``).

Part of ``tiny_models.build_all`` (its cache is keyed by this file and by the prompt task, whose words
the model learnt). A ``Qwen2ForCausalLM`` (2 layers, 64 wide, 512 positions) with a byte-level BPE
tokenizer that knows ChatML's ``<|im_start|>`` / ``<|im_end|>`` and a ChatML Jinja template in its
tokenizer files; ``<|im_end|>`` ends an answer. Trained for a second or two on :data:`CONVERSATIONS`
(only the answers are learnt) until greedy decoding gives each known answer exactly:

* ``HELLO`` -> ``HELLO_ANSWER``; with the system prompt ``PIP_SYSTEM``, ``NAME`` -> ``PIP_ANSWER``
  (without it: ``NAME_ANSWER``, also as the second turn after ``HELLO``);
* the prompt task's message for ``PROMPT`` on each of ``REVIEWS`` (no JSON fields) -> the product;
  with the JSON fields ``FIELDS``: a JSON object, a JSON object in a ```json fence, or (the third
  review) a sentence that is not JSON.

Other messages get some answer of the training set. :func:`endless_chat` makes a variant that never
stops writing (for Stop). Runs on the calling thread, inside ``tiny_models``' seeded build.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

CHAT_IDS = ("Qwen/Qwen2.5-0.5B-Instruct",)

TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MAX_POSITIONS = 512

HELLO = "Hello! What can you do?"
HELLO_ANSWER = "I answer questions on your computer, offline."
NAME = "What is your name?"
NAME_ANSWER = "I am a small local model."
PIP_SYSTEM = "You are Pip, a parcel assistant."
PIP_ANSWER = "My name is Pip."
PROMPT = "Name the product in this review: {review}"
FIELDS = ["product", "complaint"]
#: (review, product, answer with the JSON fields)
REVIEWS = (
    (
        "The blender broke after two days.",
        "The blender.",
        '{"product": "blender", "complaint": "broke after two days"}',
    ),
    (
        "My kettle leaks water everywhere.",
        "The kettle.",
        'Here it is:\n```json\n{"product": "kettle", "complaint": "leaks water"}\n```',
    ),
    ("I cannot say anything about it.", "No product is named.", "Sorry, I cannot tell."),
)


def conversations() -> list[tuple[list[dict[str, str]], str]]:
    """(messages, answer) pairs the model learns; prompts are worded by the prompt task itself."""
    from desktop.tasks.prompt import user_message

    plain = [
        ([{"role": "user", "content": HELLO}], HELLO_ANSWER),
        ([{"role": "user", "content": NAME}], NAME_ANSWER),
        ([{"role": "system", "content": PIP_SYSTEM}, {"role": "user", "content": NAME}], PIP_ANSWER),
        (
            [
                {"role": "user", "content": HELLO},
                {"role": "assistant", "content": HELLO_ANSWER},
                {"role": "user", "content": NAME},
            ],
            NAME_ANSWER,
        ),
    ]
    for review, product, as_json in REVIEWS:
        row = {"id": "1", "review": review}
        plain.append(([{"role": "user", "content": user_message(PROMPT, row, [])}], product))
        plain.append(([{"role": "user", "content": user_message(PROMPT, row, FIELDS)}], as_json))
    return plain


def fingerprint() -> bytes:
    """What the build depends on, for the models' cache key: this file and the conversations as the
    prompt task words them."""
    return Path(__file__).read_bytes() + json.dumps(conversations()).encode("utf-8")


def _tokenizer(texts: list[str]) -> Any:
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=MAX_POSITIONS,
        chat_template=TEMPLATE,
    )


def _model(tokenizer: Any, width: int, layers: int, tie: bool = True) -> Any:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=width * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=tie,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    return model


def _batch(tokenizer: Any, pairs: list[tuple[list[dict[str, str]], str]]) -> dict[str, torch.Tensor]:
    """Each conversation with its answer; loss only on the answer and its end token."""
    rows, labels = [], []
    for messages, answer in pairs:
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        asked = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        said = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        rows.append(asked + said)
        labels.append([-100] * len(asked) + said)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    target = torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels])
    return {"input_ids": ids, "attention_mask": mask, "labels": target}


def build_chat(folder: Path, seed: Any) -> Path:
    """Build and train the tiny instruct model into ``folder``."""
    pairs = conversations()
    corpus = [text for messages, answer in pairs for text in [*(m["content"] for m in messages), answer]]
    tokenizer = _tokenizer([*corpus, "system user assistant"])
    seed(20)
    model = _model(tokenizer, width=64, layers=2)
    batch = _batch(tokenizer, pairs)
    mask = batch["labels"] != -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    model.train()
    for step in range(400):
        optimizer.zero_grad(set_to_none=True)
        out = model(**batch)
        out.loss.backward()
        optimizer.step()
        if step % 10 == 9:
            predicted = out.logits[:, :-1].argmax(-1)
            margin_ok = bool((predicted[mask[:, 1:]] == batch["labels"][:, 1:][mask[:, 1:]]).all())
            if margin_ok and out.loss.item() < 0.02:
                break
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def endless_chat(source: Path, folder: Path) -> Path:
    """The tiny chat model's tokenizer and template on eight wider random layers that never write an
    end token (their scores are zero, every other token's are not): slow enough per token that a
    person can press Stop mid-answer on any CPU."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    model = _model(tokenizer, width=512, layers=8, tie=False)
    with torch.no_grad():
        for token in SPECIALS:
            model.lm_head.weight[tokenizer.convert_tokens_to_ids(token)] = 0.0
        model.lm_head.weight.mul_(20)
    model.save_pretrained(folder)
    for item in source.iterdir():
        if item.name.startswith(("tokenizer", "chat_template", "special_tokens")):
            shutil.copy(item, folder / item.name)
    return folder

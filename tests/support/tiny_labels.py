"""Tiny real models for Labels (zero-shot): an NLI model for texts and a CLIP for photos.

Part of ``tiny_models.build_all`` (its cache is keyed by this file too). Both are trained for a few
seconds so their answers are fixed, not noise:

* NLI (served as ``MoritzLaurer/mDeBERTa-v3-base-mnli-xnli``, the default, and
  ``facebook/bart-large-mnli``, one model): a ``BertForSequenceClassification`` (uncased
  WordPiece, ``model_max_length`` 128, token types for the pair) with the classes
  ``entailment``/``neutral``/``contradiction`` in mDeBERTa's order. It learnt, for the hypothesis
  template "This text is about {}." and the labels :data:`TICKET_LABELS`, which label each of
  :data:`TICKETS` is about (entailment for it, contradiction for the others), so with those labels
  "My package never arrived." is about shipping, and :data:`BOTH` about billing *and* shipping.
* CLIP (served as ``openai/clip-vit-base-patch32``): a ``CLIPModel`` with tiny vision (32-pixel
  images, patch 8) and text towers, a character-level ``CLIPTokenizer`` and a ``CLIPProcessor``; it
  learnt that :func:`tiny_media.square` is "a photo of a blue square." and :func:`circle` "a photo
  of a red circle." (and a green triangle), so with :data:`SHAPE_LABELS` the square is a
  "blue square".

Runs on the calling thread, inside ``tiny_models``' seeded, single-threaded build.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

try:
    from . import tiny_media
except ImportError:  # run as a script: no package
    import tiny_media  # type: ignore[no-redef]

NLI_IDS = ("MoritzLaurer/mDeBERTa-v3-base-mnli-xnli", "facebook/bart-large-mnli")
CLIP_IDS = ("openai/clip-vit-base-patch32",)
REPO_IDS = (*NLI_IDS, *CLIP_IDS)

TEMPLATE = "This text is about {}."
TICKET_LABELS = ("billing", "shipping", "broken product")
#: Support tickets and the label each is about.
TICKETS = {
    "My package never arrived.": "shipping",
    "The parcel is two weeks late and the tracking shows nothing.": "shipping",
    "Where is my delivery? It was due on Monday.": "shipping",
    "I was charged twice for my order.": "billing",
    "The invoice shows the wrong amount.": "billing",
    "Please refund the extra payment on my card.": "billing",
    "The screen cracked after one day.": "broken product",
    "The kettle stopped working and leaks water.": "broken product",
    "The lamp does not turn on any more.": "broken product",
}
#: A ticket about two labels at once (what "More than one can apply" is for).
BOTH = ("I was charged twice and my package never arrived.", ("billing", "shipping"))
NLI_CLASSES = ("entailment", "neutral", "contradiction")

SHAPE_LABELS = ("blue square", "red circle", "green triangle")
PHOTO_PROMPT = "a photo of a {}."


def circle(size: tuple[int, int] = (96, 96), box: tuple[int, int, int, int] = (24, 24, 72, 72)):
    """A white picture with a red disc inside ``box``, as a PIL image."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(image).ellipse(box, fill=(220, 30, 30))
    return image


def triangle(size: tuple[int, int] = (96, 96), box: tuple[int, int, int, int] = (24, 24, 72, 72)):
    """A white picture with a green triangle inside ``box``, as a PIL image."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (255, 255, 255))
    x0, y0, x1, y1 = box
    ImageDraw.Draw(image).polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=(30, 170, 60))
    return image


def build_nli(folder: Path, seed: Callable[[int], None], tools: Any) -> Path:
    """The tiny NLI model (see the module doc); ``tools`` is ``tiny_models`` (tokenizer, training)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    premises = [*TICKETS, BOTH[0]]
    hypotheses = [TEMPLATE.format(label) for label in TICKET_LABELS]
    tok = tools._wordpiece([*premises, *hypotheses], lowercase=True, vocab_size=300)
    tokenizer = BertTokenizer(
        tokenizer_object=tok,
        do_lower_case=True,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    seed(20)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tok.token_to_id("[PAD]"),
        id2label=dict(enumerate(NLI_CLASSES)),
        label2id={name: i for i, name in enumerate(NLI_CLASSES)},
    )
    model = BertForSequenceClassification(config)
    about = {**{text: (label,) for text, label in TICKETS.items()}, BOTH[0]: BOTH[1]}
    firsts, seconds, classes = [], [], []
    for premise in premises:
        for label in TICKET_LABELS:
            firsts.append(premise)
            seconds.append(TEMPLATE.format(label))
            classes.append(0 if label in about[premise] else 2)
    batch = dict(tokenizer(firsts, seconds, padding=True, return_tensors="pt"))
    batch["labels"] = torch.tensor(classes)
    inputs = {k: v for k, v in batch.items() if k != "labels"}

    def done() -> bool:
        logits = model(**inputs).logits
        # Entailment against contradiction, per pair: sure of every one.
        pair = logits[:, [0, 2]].softmax(-1)[:, 0]
        target = (batch["labels"] == 0).float()
        return bool(((pair - target).abs() < 0.1).all())

    tools._train(model, batch, steps=300, lr=5e-3, done=done)
    return tools._save(model, tokenizer, folder)


def _char_tokenizer() -> Any:
    """A character-level CLIPTokenizer: every byte-level character, alone and at a word's end."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32)


def _shape_examples() -> list[tuple[Any, str]]:
    """(picture, shape) pairs: each shape at a few sizes and places, on pictures of a few sizes."""
    examples = []
    for size, box in (
        ((96, 96), (24, 24, 72, 72)),
        ((300, 300), (75, 75, 225, 225)),
        ((120, 80), (20, 10, 80, 70)),
        ((64, 64), (8, 8, 56, 56)),
    ):
        examples.append((tiny_media.square(size, box), "blue square"))
        examples.append((circle(size, box), "red circle"))
        examples.append((triangle(size, box), "green triangle"))
    return examples


def build_clip(folder: Path, seed: Callable[[int], None]) -> Path:
    """The tiny CLIP (see the module doc)."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = _char_tokenizer()
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        do_center_crop=True,
        do_normalize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    seed(21)
    tower = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    config = CLIPConfig(
        text_config={
            **tower,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 32,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    model = CLIPModel(config)
    examples = _shape_examples()
    pixels = processor(images=[image for image, _ in examples], return_tensors="pt").pixel_values
    prompts = tokenizer(
        [PHOTO_PROMPT.format(label) for label in SHAPE_LABELS], padding=True, return_tensors="pt"
    )
    targets = torch.tensor([SHAPE_LABELS.index(shape) for _, shape in examples])
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    model.train()
    for _step in range(150):
        optimizer.zero_grad(set_to_none=True)
        # Every picture against the three prompts: the right one wins (images x prompts logits).
        logits = model(**prompts, pixel_values=pixels).logits_per_image
        loss = torch.nn.functional.cross_entropy(logits, targets)
        loss.backward()
        optimizer.step()
        if loss.item() < 0.02:
            break
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder

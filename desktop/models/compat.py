"""Does a model fit a kind of task? Read from its ``config.json`` alone (no torch, no download)."""

from __future__ import annotations

import json
from pathlib import Path

from desktop.errors import ModelError

#: The model classes (by architecture name suffix) that fit each kind of task.
ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "text-classification": ("ForSequenceClassification",),
    "token-classification": ("ForTokenClassification",),
    "text-generation": ("LMHeadModel", "ForCausalLM"),
    "chat": ("LMHeadModel", "ForCausalLM"),
    "image-classification": ("ForImageClassification", "ForImageClassificationWithTeacher"),
    "seq2seq": ("ForConditionalGeneration", "MTModel"),
    "automatic-speech-recognition": ("WhisperForConditionalGeneration",),
    "object-detection": ("ForObjectDetection",),
    "zero-shot-classification": ("ForSequenceClassification",),
    "zero-shot-image-classification": ("CLIPModel", "SiglipModel"),
}
#: Kinds whose architectures must be named in full (X-CLIP, a video model, ends in CLIPModel too).
WHOLE_NAMES = {"zero-shot-image-classification"}
KIND_NAMES = {
    "text-classification": "text classification",
    "token-classification": "named entity recognition",
    "text-generation": "text generation",
    "chat": "chat (instruct models with a chat template)",
    "image-classification": "image classification",
    "seq2seq": "translation or summarization",
    "automatic-speech-recognition": "speech recognition (Whisper)",
    "object-detection": "object detection",
    "zero-shot-classification": "labels you choose for texts (an NLI model)",
    "zero-shot-image-classification": "labels you choose for photos (a CLIP or SigLIP model)",
}
#: Encoder-decoders that read sound or images, not text: never a translator or a summarizer.
NOT_TEXT_TYPES = {"whisper", "speech_to_text", "speech-encoder-decoder", "vision-encoder-decoder"}


def read_config(folder: Path) -> dict:
    """The model's config.json, or {} when it is missing or unreadable."""
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def model_type(folder: Path) -> str:
    return str(read_config(folder).get("model_type", ""))


def has_chat_template(folder: Path) -> bool:
    """True when the model folder carries a chat template (in ``tokenizer_config.json``, or as
    ``chat_template.jinja`` / ``chat_template.json``, where transformers 4.43+ saves it)."""
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        data = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get("chat_template"))


def check_fits(kind: str, folder: Path, display: str) -> None:
    """Refuse a model whose architecture does not fit ``kind``, with the reason (a chat model also
    needs its own chat template: plain completion models belong to the Generate tab)."""
    if not (folder / "config.json").is_file():
        raise ModelError(f"{display} is not a model: its config.json is missing or unreadable.")
    config = read_config(folder)
    if not config:
        raise ModelError(f"{display} is not a model: its config.json is missing or unreadable.")
    architectures = config.get("architectures") or []
    if (
        kind == "seq2seq"
        and config.get("is_encoder_decoder")
        and config.get("model_type") not in NOT_TEXT_TYPES
    ):
        return
    if kind == "seq2seq" and config.get("model_type") in NOT_TEXT_TYPES:
        pass  # e.g. WhisperForConditionalGeneration: a ...ForConditionalGeneration that reads sound
    elif any(_fits(kind, arch, name) for arch in architectures for name in ARCHITECTURES[kind]):
        if kind == "chat" and not has_chat_template(folder):
            raise ModelError(
                f"{display} has no chat template, so it cannot chat: it is a plain text-completion "
                "model. Use it in the Generate tab (pipedesk run generate), or choose an instruct model."
            )
        if kind == "zero-shot-classification":
            nli_label_ids(config.get("label2id") or {}, display)
        return
    what = ", ".join(architectures) or config.get("model_type", "unknown")
    raise ModelError(f"{display} does not fit {KIND_NAMES[kind]}: it is a {what} model.")


def _fits(kind: str, architecture: str, name: str) -> bool:
    return architecture == name if kind in WHOLE_NAMES else architecture.endswith(name)


def check_fits_any(kinds: tuple[str, ...], folder: Path, display: str) -> str:
    """The first of ``kinds`` the model fits; the first refusal when it fits none."""
    first: ModelError | None = None
    for kind in kinds:
        try:
            check_fits(kind, folder, display)
            return kind
        except ModelError as exc:
            first = first or exc
    assert first is not None, "no kinds given"
    raise first


def nli_label_ids(label2id: dict[str, int], display: str) -> tuple[int, int]:
    """(entailment, contradiction) class ids of an NLI model, read from its ``label2id``; ModelError
    when it has no entailment class (a sentiment classifier, say). The contradiction class is the one
    so named, else (as transformers' zero-shot pipeline assumes) the last class when entailment is
    the first, the first otherwise."""
    ids = {str(name).lower(): int(index) for name, index in label2id.items()}
    entailment = next((i for name, i in ids.items() if name.startswith("entail")), None)
    if entailment is None:
        names = ", ".join(str(name) for name in label2id) or "none"
        raise ModelError(
            f"{display} does not fit {KIND_NAMES['zero-shot-classification']}: its classes are {names}, "
            "and labels you choose need a model trained on NLI, with an 'entailment' class."
        )
    named = [i for name, i in ids.items() if name.startswith(("contradict", "not_entail", "not entail"))]
    if named:
        return entailment, named[0]
    return entailment, (max(ids.values()) if entailment == 0 else 0)

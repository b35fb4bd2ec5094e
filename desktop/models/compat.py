"""Does a model fit a kind of task? Read from its ``config.json`` alone (no torch, no download)."""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    "sentence-embedding": ("Model",),  # an encoder's bare model (BertModel...) with pooling on top
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
    "sentence-embedding": "sentence embeddings (a sentence-transformers model)",
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
    elif kind == "sentence-embedding":
        read_pooling(folder, display)
        if any(arch.endswith("Model") and not arch.endswith("LMHeadModel") for arch in architectures):
            return
    elif any(_fits(kind, arch, name) for arch in architectures for name in ARCHITECTURES[kind]):
        if kind == "chat" and not has_chat_template(folder):
            raise ModelError(
                f"{display} has no chat template, so it cannot chat: it is a plain text-completion "
                "model. Use it in the Generate tab (pipedesk run generate, /v1/completions), or choose an "
                "instruct model."
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


#: How sentence-transformers pools token vectors into one (``1_Pooling/config.json``'s modes).
POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}


@dataclass(frozen=True)
class Pooling:
    """A sentence-transformers model's recipe after the encoder: how token vectors become one vector,
    whether it is scaled to length 1, and the tokens it reads (``max_seq_length``; 0: the model's)."""

    mode: str
    normalize: bool
    max_length: int = 0


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_pooling(folder: Path, display: str) -> Pooling:
    """The pooling of the sentence-transformers model in ``folder`` (its ``modules.json``); ModelError
    when it is not one, or has a step Pipedesk does not run (a Dense layer, another pooling)."""
    listed = _json(folder / "modules.json")
    modules = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if "Pooling" not in kinds:
        raise ModelError(
            f"{display} does not fit {KIND_NAMES['sentence-embedding']}: it has no sentence-transformers "
            "pooling (modules.json)."
        )
    pooling = modules[kinds.index("Pooling")]
    other = [kind for kind in kinds if kind not in ("Transformer", "Pooling", "Normalize")]
    if other:
        raise ModelError(
            f"{display} adds a {other[0]} step after pooling, which Pipedesk does not run: choose "
            "another sentence-embedding model."
        )
    config = _json(folder / Path(str(pooling.get("path") or "1_Pooling")).name / "config.json")
    modes = [mode for key, mode in POOLING_MODES.items() if isinstance(config, dict) and config.get(key)]
    if len(modes) != 1:
        raise ModelError(
            f"{display} pools its tokens in a way Pipedesk does not (it takes mean, CLS, max or "
            "mean-sqrt-len pooling, one at a time)."
        )
    bert = _json(folder / "sentence_bert_config.json")
    length = bert.get("max_seq_length") if isinstance(bert, dict) else None
    return Pooling(modes[0], "Normalize" in kinds, int(length) if isinstance(length, int) else 0)


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

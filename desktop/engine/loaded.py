"""A model in memory, and how each kind of model is loaded.

The rule for tokenizers (fast tokenizers are not thread-safe): ``Loaded.tokenizer`` is only
called through :meth:`Loaded.encode` / :meth:`Loaded.decode`, which hold that model's tokenizer
lock, from any thread. A pipeline kept for its pre/post-processing (NER, images) has its own
tokenizer copy and runs only inside a task's ``forward``, under the engine's device lock; so
does the copy a streamer decodes with.
"""

from __future__ import annotations

import copy
import logging
import pickle
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from desktop.errors import ModelError
from desktop.hf import transformers_api
from desktop.models.compat import model_type, read_pooling

log = logging.getLogger(__name__)

#: fp16 overflows in these architectures; they stay in fp32 on a GPU.
FP32_ONLY = {"t5", "mt5", "umt5", "longt5"}
#: What text models need: the warm-up resolves these, so the first answer waits for nothing else.
_CORE = (
    "AutoTokenizer",
    "AutoModelForSequenceClassification",
    "AutoModelForCausalLM",
    "AutoModelForSeq2SeqLM",
)
#: Resolved when a model of such a kind first loads: each set costs seconds of imports (measured on
#: 2 cores: ``pipeline`` about 3 s, the speech classes about 3 s), which a first sentiment answer
#: must not wait for.
_MORE = {
    "pipeline": ("pipeline",),
    "automatic-speech-recognition": ("AutoProcessor", "GenerationConfig"),
    "sentence-embedding": ("AutoModel",),
    "zero-shot-image-classification": ("AutoModel", "AutoImageProcessor"),
}

#: Kinds whose tasks call a transformers pipeline in ``forward`` (its own pre/post-processing).
PIPELINE_KINDS = {"token-classification", "image-classification", "object-detection"}


@dataclass(eq=False)
class Loaded:
    """A model on one device, ready for a task's steps (see the module docstring for tokenizers)."""

    kind: str
    display: str
    path: Path
    device: str
    model: Any
    tokenizer: Any = None
    pipeline: Any = None
    nbytes: int = 0
    feature_extractor: Any = None  # speech models: audio -> log-mel features (numpy, thread-safe)
    image_processor: Any = None  # image-text models: photos -> pixel values (thread-safe)
    extra: dict[str, Any] = field(default_factory=dict)  # derived copies: int8 weights, a CPU copy
    pooling: Any = None  # sentence-embedding models: how token vectors become one (models.compat.Pooling)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stream_tokenizer: Any = field(default=None, repr=False)

    @property
    def max_tokens(self) -> int:
        """The longest input (in tokens) the model takes."""
        limit = getattr(self.tokenizer, "model_max_length", None) or 512
        config = getattr(self.model, "config", None)
        positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        if positions:
            limit = min(limit, positions)
        return int(min(limit, 4096 if self.kind == "seq2seq" else 1_000_000))

    def encode(self, texts: list[str], **kwargs: Any) -> dict[str, Any]:
        """The tokenizer on ``texts`` (special tokens added), under this model's tokenizer lock."""
        with self._lock:
            return self.tokenizer(texts, **kwargs)

    def chat_text(self, messages: list[dict[str, str]]) -> str:
        """``messages`` through the model's own chat template, ready for the answer (the generation
        prompt added), as text to encode without special tokens; under the tokenizer lock."""
        with self._lock:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.encode([text], add_special_tokens=True, truncation=False)["input_ids"][0])

    def decode(self, ids: Any) -> list[str]:
        """Token id rows back to text (special tokens dropped), under the tokenizer lock."""
        with self._lock:
            return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def features(self, audio: list[Any], **kwargs: Any) -> Any:
        """Log-mel features for a batch of recordings (speech models)."""
        return self.feature_extractor(audio, **kwargs)

    def token_texts(self, ids: list[int]) -> list[str]:
        """The text of each token id on its own, special tokens included (a speech model's timestamps
        and word boundaries), under the tokenizer lock."""
        with self._lock:
            return [self.tokenizer.decode([i], skip_special_tokens=False) for i in ids]

    def pixels(self, images: list[Any]) -> Any:
        """Pixel values for a batch of decoded images (image-text models), one row per image."""
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"]

    def pad_id(self) -> int:
        tokenizer = self.tokenizer
        for value in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
            if value is not None:
                return int(value)
        return 0

    def can_pad(self) -> bool:
        return getattr(self.tokenizer, "pad_token_id", None) is not None

    def stream_tokenizer(self) -> Any:
        """A tokenizer copy for a streamer (decodes on the generating thread, under the device lock)."""
        if self._stream_tokenizer is None:
            with self._lock:
                self._stream_tokenizer = copy.deepcopy(self.tokenizer)
        return self._stream_tokenizer

    def with_model(self, model: Any, device: str | None = None) -> Loaded:
        """This model with other weights (int8, a CPU copy): same tokenizer, a pipeline of its own."""
        other = replace(self, model=model, device=device or self.device, extra={})
        if self.pipeline is not None:
            other.pipeline = _pipeline(self.kind, model, self.tokenizer, self.pipeline, other.device)
        return other


def text_api() -> Any:
    """transformers with the classes text models load with resolved (the warm-up calls this)."""
    return transformers_api(*_CORE)


def choose_dtype(device: str, folder: Path) -> Any:
    """bf16 on a GPU that has it, fp16 on other GPUs and Apple MPS, fp32 on the CPU (and for T5s)."""
    import torch

    if device == "cpu" or model_type(folder) in FP32_ONLY:
        return torch.float32
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16


def load_model(
    kind: str, folder: Path, display: str, device: str, converted: Path | None = None, progress: Any = None
) -> Loaded:
    """Load the model in ``folder`` for ``kind`` onto ``device`` (raises ModelError with the reason).
    A speech model runs on CTranslate2 (:mod:`desktop.engine.whisper`) from its converted copy at
    ``converted`` (made now on first use, with ``progress``)."""
    dtype = choose_dtype(device, folder)
    started = time.perf_counter()
    try:
        if kind == "automatic-speech-recognition":
            loaded = _load_speech(folder, display, device, converted or folder / ".converted", progress)
        else:
            loaded = _load(kind, folder, display, device, dtype)
    except pickle.UnpicklingError:
        # torch refused a pickle that would run code (its words advise turning the check off: no).
        log.warning("Refused the pickled weights of %s in %s: they hold more than tensors", display, folder)
        raise ModelError(
            f"{display} could not be loaded: its weights (a PyTorch .bin file) hold code, not only "
            "numbers, and Pipedesk never runs that. Use a copy of the model saved as safetensors."
        ) from None
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        log.exception("Could not load %s from %s", display, folder)
        raise ModelError(f"{display} could not be loaded: {_first_line(exc)}") from None
    loaded.nbytes = getattr(loaded.model, "nbytes", 0) or sum(
        p.numel() * p.element_size() for p in loaded.model.parameters()
    )
    log.info(
        "Loaded %s (%s, %.1f MB) on %s in %.2fs",
        display,
        kind,
        loaded.nbytes / 1e6,
        device,
        time.perf_counter() - started,
    )
    return loaded


def _load(kind: str, folder: Path, display: str, device: str, dtype: Any) -> Loaded:
    more = _MORE["pipeline"] if kind in PIPELINE_KINDS else _MORE.get(kind, ())
    tf = transformers_api(*_CORE, *more)

    if kind in PIPELINE_KINDS:
        pipe = tf.pipeline(kind, model=str(folder), device=device, dtype=dtype)
        tokenizer = copy.deepcopy(pipe.tokenizer) if pipe.tokenizer is not None else None
        return Loaded(kind, display, folder, device, pipe.model, tokenizer, pipe)
    if kind == "sentence-embedding":
        pooling = read_pooling(folder, display)
        model = tf.AutoModel.from_pretrained(folder, dtype=dtype).to(device).eval()
        tokenizer = tf.AutoTokenizer.from_pretrained(folder)
        if pooling.max_length:  # what sentence-transformers reads of a text, not the positions' limit
            tokenizer.model_max_length = min(pooling.max_length, tokenizer.model_max_length)
        return Loaded(kind, display, folder, device, model, tokenizer, pooling=pooling)
    if kind == "zero-shot-image-classification":
        model = tf.AutoModel.from_pretrained(folder, dtype=dtype).to(device).eval()
        loaded = Loaded(kind, display, folder, device, model, tf.AutoTokenizer.from_pretrained(folder))
        loaded.image_processor = tf.AutoImageProcessor.from_pretrained(folder)
        return loaded
    classes = {
        "text-classification": tf.AutoModelForSequenceClassification,
        "zero-shot-classification": tf.AutoModelForSequenceClassification,
        "text-generation": tf.AutoModelForCausalLM,
        "chat": tf.AutoModelForCausalLM,
        "seq2seq": tf.AutoModelForSeq2SeqLM,
    }
    model = classes[kind].from_pretrained(folder, dtype=dtype).to(device).eval()
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    if kind in ("text-generation", "chat") and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Loaded(kind, display, folder, device, model, tokenizer)


def _load_speech(folder: Path, display: str, device: str, converted: Path, progress: Any) -> Loaded:
    from desktop.engine import whisper

    processor = transformers_api(*_MORE["automatic-speech-recognition"]).AutoProcessor.from_pretrained(folder)
    model = whisper.load(folder, converted, device, progress, display)
    where = device if model.placement.device != "cpu" else "cpu"  # Apple MPS, or no CUDA for it: the CPU
    loaded = Loaded("automatic-speech-recognition", display, folder, where, model, processor.tokenizer)
    loaded.feature_extractor = processor.feature_extractor
    return loaded


def _pipeline(kind: str, model: Any, tokenizer: Any, like: Any, device: str) -> Any:
    pipeline = transformers_api(*_MORE["pipeline"]).pipeline

    processor = getattr(like, "image_processor", None)
    extra = {"image_processor": processor} if processor is not None else {}
    own = copy.deepcopy(tokenizer) if tokenizer is not None else None
    return pipeline(kind, model=model, tokenizer=own, device=device, **extra)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__

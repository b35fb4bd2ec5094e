"""Runtime: the device, the loaded-model cache and the one place models are called.

Gradio runs task functions on its worker threads; every model call goes
through :meth:`Runtime.infer`, which holds one lock, so the device sees one
job at a time (the UI also queues them with one ``concurrency_id``). Loaded
models live in an LRU cache bounded by a memory budget: switching back and
forth between models is instant and memory stays bounded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from desktop.errors import ModelError, UserError
from desktop.models import ModelStore, ProgressCallback, looks_like_hub_id
from desktop.tasks.spec import ModelRef, TaskSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The model classes (by architecture name suffix) that fit each kind of task.
ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "text-classification": ("ForSequenceClassification",),
    "token-classification": ("ForTokenClassification",),
    "text-generation": ("LMHeadModel", "ForCausalLM"),
    "image-classification": ("ForImageClassification", "ForImageClassificationWithTeacher"),
    "seq2seq": ("ForConditionalGeneration", "MTModel"),
}
KIND_NAMES = {
    "text-classification": "text classification",
    "token-classification": "named entity recognition",
    "text-generation": "text generation",
    "image-classification": "image classification",
    "seq2seq": "translation or summarization",
}
#: fp16 overflows in these architectures; they stay in fp32 on a GPU.
_FP32_ONLY = {"t5", "mt5", "umt5", "longt5"}


def choose_device(requested: str | None = None) -> str:
    """CUDA, then Apple MPS, then the CPU; ``requested`` ('cpu', 'cuda', 'cuda:1', 'mps') overrides."""
    import torch

    requested = (requested or os.environ.get("PIPEDESK_DEVICE") or "auto").strip().lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {requested}: no CUDA GPU is available on this computer.")
        return requested
    if requested == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError("--device mps: Apple's Metal GPU is not available on this computer.")
        return "mps"
    raise UserError(f"Unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps.")


def default_budget_bytes(device: str) -> int:
    """How much memory loaded models may use: ``PIPEDESK_MEMORY_BUDGET_MB`` or a share of the device."""
    env = os.environ.get("PIPEDESK_MEMORY_BUDGET_MB", "").strip()
    if env:
        return int(float(env) * 1024 * 1024)
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory * 0.7)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    return int(total * 0.4)


@dataclass
class Loaded:
    """A model in memory, ready to call."""

    kind: str
    display: str
    path: Path
    obj: Any  # a transformers Pipeline, or a Seq2SeqRunner
    nbytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.obj, "tokenizer", None)

    @property
    def max_tokens(self) -> int:
        """The longest input (in tokens) the model takes."""
        tok = self.tokenizer
        limit = getattr(tok, "model_max_length", None) or 512
        config = getattr(getattr(self.obj, "model", None), "config", None)
        positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        if positions:
            limit = min(limit, positions)
        return int(min(limit, 1_000_000))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])


@dataclass
class Status:
    """What the status line shows."""

    device: str
    dtype: str
    model: str = ""
    latency_ms: float | None = None
    loaded: int = 0

    def line(self) -> str:
        parts = [f"Device: **{self.device.upper()}** ({self.dtype})"]
        if self.model:
            parts.append(f"model: **{self.model}**")
        if self.latency_ms is not None:
            parts.append(f"last run: **{self.latency_ms:,.0f} ms**")
        parts.append(f"models in memory: {self.loaded}")
        return " · ".join(parts)


class Runtime:
    """Chooses the device once, loads models on demand, keeps them warm, runs them."""

    def __init__(
        self,
        device: str | None = None,
        store: ModelStore | None = None,
        budget_bytes: int | None = None,
    ) -> None:
        import torch

        self.device = choose_device(device)
        self.store = store or ModelStore()
        self.budget_bytes = budget_bytes or default_budget_bytes(self.device)
        if self.device.startswith("cuda"):
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif self.device == "mps":
            self.dtype = torch.float16
        else:
            self.dtype = torch.float32
        self._cache: OrderedDict[tuple[str, str], Loaded] = OrderedDict()
        self._lock = threading.RLock()
        self.status = Status(device=self.device, dtype=str(self.dtype).removeprefix("torch."))
        self.load_count = 0  # models loaded from disk so far (tests and the status line)

    # --- which model -------------------------------------------------------------------

    def resolve(self, spec: TaskSpec, name: str | None, kind: str | None = None) -> ModelRef | Path:
        """Turn what the user typed into a Hub reference or a local folder.

        Accepts nothing (the task's default), a label from the dropdown, a Hub id,
        a name given by ``pipedesk models import``, or the path of a model folder.
        """
        from desktop import catalog

        name = (name or "").strip()
        if not name:
            return spec.default_model
        from desktop.tasks import known_models

        for ref in (*spec.models, *known_models().values()):
            if ref.repo and name in (ref.repo, ref.label):
                return ref
        imported = catalog.imported_path(name, self.store.root)
        if imported is not None:
            return imported
        candidate = Path(name).expanduser()
        if candidate.is_absolute() or name.startswith((".", "~")) or candidate.is_dir():
            if not candidate.is_dir():
                raise ModelError(f"The folder {name} does not exist.")
            if not (candidate / "config.json").is_file():
                raise ModelError(
                    f"The folder {name} is not a model: it has no config.json "
                    "(save one with save_pretrained, or pick a Hub model)."
                )
            return candidate.resolve()
        if looks_like_hub_id(name) and "/" in name:
            return ModelRef(name, "main")
        raise ModelError(
            f"There is no model called {name!r}: pick one from the task's list, or give a Hub id "
            "(owner/name), the name of an imported model or the path of a model folder."
        )

    # --- loading -----------------------------------------------------------------------

    def load(
        self,
        spec: TaskSpec,
        name: str | None,
        kind: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Loaded:
        """The model ``name`` for ``spec`` (of ``kind``), from memory if it is there."""
        kind = kind or spec.kind
        target = self.resolve(spec, name, kind)
        if isinstance(target, ModelRef):
            display = target.display
            key = (kind, f"{target.repo}@{target.revision}")
        else:
            display = target.name
            key = (kind, str(target))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            folder = target if isinstance(target, Path) else self.store.ensure(target, progress)
            check_fits(kind, folder, display)
            if progress:
                progress(0, 0, f"Loading {display} into memory")
            loaded = self._load(kind, folder, display)
            self._cache[key] = loaded
            self.load_count += 1
            self._evict()
            self.status.loaded = len(self._cache)
            return loaded

    def _load(self, kind: str, folder: Path, display: str) -> Loaded:
        import torch

        dtype = self.dtype
        model_type = _model_type(folder)
        if model_type in _FP32_ONLY:
            dtype = torch.float32
        started = time.perf_counter()
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the app shows its own progress ("Loading weights" bars)
        try:
            if kind == "seq2seq":
                from desktop.seq2seq import Seq2SeqRunner

                obj: Any = Seq2SeqRunner.load(folder, self.device, dtype)
            else:
                from transformers import pipeline

                obj = pipeline(kind, model=str(folder), device=self.device, dtype=dtype)
                if kind == "text-generation" and obj.tokenizer.pad_token is None:
                    obj.tokenizer.pad_token = obj.tokenizer.eos_token
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log.exception("Could not load %s from %s", display, folder)
            raise ModelError(f"{display} could not be loaded: {_first_line(exc)}") from None
        model = obj.model
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        log.info(
            "Loaded %s (%s, %.1f MB) on %s in %.2fs",
            display,
            kind,
            nbytes / 1e6,
            self.device,
            time.perf_counter() - started,
        )
        return Loaded(kind=kind, display=display, path=folder, obj=obj, nbytes=nbytes)

    def _evict(self) -> None:
        """Drop least recently used models until the rest fit the budget (the newest always stays)."""
        while len(self._cache) > 1 and self.memory_in_use() > self.budget_bytes:
            key, old = self._cache.popitem(last=False)
            log.info("Unloading %s to stay within the memory budget", old.display)
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def memory_in_use(self) -> int:
        return sum(item.nbytes for item in self._cache.values())

    def loaded_models(self) -> list[str]:
        """Display names of the models in memory, least recently used first."""
        return [item.display for item in self._cache.values()]

    # --- running -----------------------------------------------------------------------

    def infer(self, loaded: Loaded, call: Callable[[Any], T]) -> T:
        """Run ``call(loaded.obj)`` on the device, one job at a time, and time it."""
        import torch

        with self._lock, torch.inference_mode():
            started = time.perf_counter()
            result = call(loaded.obj)
            self.status.latency_ms = (time.perf_counter() - started) * 1000
            self.status.model = loaded.display
        return result


def check_fits(kind: str, folder: Path, display: str) -> None:
    """Refuse a model whose architecture does not fit the task, with the reason."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"{display} is not a model: its config.json is missing or unreadable.") from None
    architectures = config.get("architectures") or []
    wanted = ARCHITECTURES[kind]
    if kind == "seq2seq" and config.get("is_encoder_decoder"):
        return
    if any(arch.endswith(suffix) for arch in architectures for suffix in wanted):
        return
    what = ", ".join(architectures) or config.get("model_type", "unknown")
    raise ModelError(f"{display} does not fit {KIND_NAMES[kind]}: it is a {what} model.")


def _model_type(folder: Path) -> str:
    import json

    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type", "")
    except (OSError, ValueError):
        return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__

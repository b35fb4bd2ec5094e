"""How each text task runs in a batch: encode pieces, run a batch of them, combine per row.

One adapter per kind of model. ``encode`` runs on the batch thread (or, on a
GPU, on a prefetch thread while the device works) with the adapter's own copy
of the tokenizer, so it never races the UI's calls; ``run`` is only ever
called inside ``Runtime.infer`` (one job at a time on the device).
Classification does its own padding and forward pass (the pipeline's
per-call overhead is what made batching slow); NER uses the pipeline's own
pre/post-processing on length-sorted batches; generation and seq2seq call
``generate`` on padded batches.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from desktop.errors import UserError
from desktop.runtime import Loaded


@dataclass(eq=False)
class Piece:
    """A text (or part ``part`` of one) to run: its row, tokens and what the adapter needs."""

    row: int
    text: str
    part: int = 0
    length: int = 0
    truncated: bool = False
    payload: Any = None


class Adapter:
    """The batch side of a task: result columns, costs, and the model calls."""

    columns: tuple[str, ...] = ()
    chart_title: str | None = None  # what the chart of this task counts (None: no chart)
    extra_cost = 0  # tokens added to every piece's cost (new tokens a generator makes)

    def __init__(self, loaded: Loaded, limit: int) -> None:
        self.loaded = loaded
        self.limit = limit
        self.encoder = copy.deepcopy(loaded.tokenizer)
        # Lengths are measured untruncated on purpose: no 'longer than the model' warning per window.
        self.encoder.model_max_length = 1 << 40
        self.model = loaded.obj.model
        self.notes: list[str] = []

    @property
    def device(self) -> str:
        return str(self.model.device)

    def defaults(self, device: str) -> tuple[int, int]:
        """(token budget per batch, most rows per batch) on ``device``."""
        return (4096, 64) if device == "cpu" else (65536, 1024)

    def split(self, text: str) -> list[str]:
        return [text]

    def encode(self, pieces: list[Piece]) -> None:
        """Fill in token ids, lengths and truncation (the model's limit, keeping the start)."""
        texts = [p.text for p in pieces]
        ids = self.encoder(texts, add_special_tokens=True, truncation=False)["input_ids"]
        long = [i for i, row in enumerate(ids) if len(row) > self.limit]
        if long:
            cut = self.encoder([texts[i] for i in long], truncation=True, max_length=self.limit)["input_ids"]
            for i, row in zip(long, cut, strict=True):
                ids[i] = row
                pieces[i].truncated = True
        for piece, row in zip(pieces, ids, strict=True):
            piece.payload = row
            piece.length = len(row)

    def cost(self, piece: Piece) -> int:
        return piece.length + self.extra_cost

    def run(self, pieces: list[Piece]) -> list[Any]:
        raise NotImplementedError

    def combine(self, text: str, outputs: list[Any], pieces: list[Piece]) -> dict[str, Any]:
        raise NotImplementedError

    def chart_values(self, values: dict[str, Any]) -> Iterable[str]:
        """What one row adds to the chart (labels, entity types)."""
        return ()

    def truncation_note(self) -> str:
        return f"truncated: only the first {self.limit:,} tokens were read"

    def to_cpu(self) -> None:
        """Continue on the CPU in fp32 (a GPU that keeps failing): reload the weights there."""
        import torch

        self.model = type(self.model).from_pretrained(self.loaded.path, dtype=torch.float32).eval()

    def batch_tensors(self, rows: list[list[int]], left: bool = False) -> dict[str, Any]:
        """Pad token id rows into ``input_ids`` + ``attention_mask`` on the model's device."""
        import torch

        pad = self.encoder.pad_token_id
        pad = 0 if pad is None else pad
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            if left:
                ids[i, width - len(row) :] = torch.tensor(row)
                mask[i, width - len(row) :] = 1
            else:
                ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
        device = self.model.device
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def cpu_budget(tokens_per_thread: int, rows_per_thread: int) -> tuple[int, int]:
    """(token budget, most rows) for a CPU batch, scaled by the threads torch uses."""
    import torch

    threads = max(2, torch.get_num_threads())
    return tokens_per_thread * threads, rows_per_thread * threads


class ClassifyAdapter(Adapter):
    """Sentiment and text classification: the label and its score, as the pipeline gives them."""

    columns = ("label", "score")
    chart_title = "label"

    def __init__(self, loaded: Loaded, limit: int) -> None:
        import inspect

        super().__init__(loaded, limit)
        config = self.model.config
        if config.problem_type == "regression":
            self.function = "none"
        elif config.problem_type == "multi_label_classification" or config.num_labels == 1:
            self.function = "sigmoid"
        else:
            self.function = "softmax"
        self.token_types = "token_type_ids" in self.encoder.model_input_names
        self.no_cache = "use_cache" in inspect.signature(self.model.forward).parameters
        self.single = self.encoder.pad_token_id is None  # cannot pad: one row at a time

    def defaults(self, device: str) -> tuple[int, int]:
        if self.single:
            return (1 << 30, 1)
        if device == "cpu":
            # Measured on 2 cores: 1,024-token batches beat 8,192 by about 10% (activations stay
            # in cache); more threads keep more tokens busy.
            return cpu_budget(512, 16)
        return (131072, 2048)

    def run(self, pieces: list[Piece]) -> list[tuple[str, float]]:
        import torch

        inputs = self.batch_tensors([p.payload for p in pieces], left=self.encoder.padding_side == "left")
        if self.token_types:
            inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        if self.no_cache:
            inputs["use_cache"] = False
        logits = self.model(**inputs).logits.float()
        if self.function == "softmax":
            scores = logits.softmax(dim=-1)
        elif self.function == "sigmoid":
            scores = logits.sigmoid()
        else:
            scores = logits
        best, index = scores.max(dim=-1)
        labels = self.model.config.id2label
        return [(labels[int(i)], float(s)) for s, i in zip(best.tolist(), index.tolist(), strict=True)]

    def combine(self, text: str, outputs: list[Any], pieces: list[Piece]) -> dict[str, Any]:
        label, score = outputs[0]
        return {"label": label, "score": round(score, 6)}

    def chart_values(self, values: dict[str, Any]) -> Iterable[str]:
        return [values["label"]] if values.get("label") else []


class NerAdapter(Adapter):
    """Named entities: the pipeline's grouping on whitespace-cleaned text, offsets into the original."""

    columns = ("entities", "entity_types")
    chart_title = "entity type"

    def __init__(self, loaded: Loaded, limit: int) -> None:
        super().__init__(loaded, limit)
        self.pipe = loaded.obj
        self.stride = max(0, min(32, limit // 4)) or None

    def defaults(self, device: str) -> tuple[int, int]:
        return cpu_budget(512, 16) if device == "cpu" else (65536, 512)

    def split(self, text: str) -> list[str]:
        from desktop.tasks.text import clean_whitespace

        return [clean_whitespace(text)[0]]

    def encode(self, pieces: list[Piece]) -> None:
        # Long texts are read in overlapping windows (as in the NER tab): nothing is cut.
        ids = self.encoder([p.text for p in pieces], add_special_tokens=True, truncation=False)["input_ids"]
        for piece, row in zip(pieces, ids, strict=True):
            piece.length = len(row)
            piece.payload = piece.text

    def run(self, pieces: list[Piece]) -> list[Any]:
        texts = [p.payload for p in pieces]
        return self.pipe(texts, batch_size=len(texts), aggregation_strategy="simple", stride=self.stride)

    def combine(self, text: str, outputs: list[Any], pieces: list[Piece]) -> dict[str, Any]:
        from desktop.tasks.ner import to_entities
        from desktop.tasks.text import clean_whitespace

        _, index = clean_whitespace(text)
        entities = to_entities(text, index, outputs[0])
        return {"entities": entities, "entity_types": ", ".join(sorted({e["type"] for e in entities}))}

    def chart_values(self, values: dict[str, Any]) -> Iterable[str]:
        return [e["type"] for e in values.get("entities") or []]

    def use_model(self, model: Any) -> None:
        """Run a different copy of the weights (int8 or CPU) through a pipeline of its own."""
        from transformers import pipeline

        self.model = model
        self.pipe = pipeline(
            self.loaded.kind, model=model, tokenizer=copy.deepcopy(self.encoder), device="cpu"
        )

    def to_cpu(self) -> None:
        super().to_cpu()
        self.use_model(self.model)


class GenerateAdapter(Adapter):
    """Text generation: each prompt continued (the end of a prompt too long is kept)."""

    columns = ("generated_text",)

    def __init__(self, loaded: Loaded, limit: int, options: dict[str, Any]) -> None:
        from desktop.tasks import generate

        super().__init__(loaded, limit)
        values = [opt.check(options.get(opt.name, opt.default)) for opt in generate.OPTIONS]
        max_new, temperature, top_p, self.seed = values
        self.kwargs = generate.generation_kwargs(max_new, temperature, top_p)
        self.room = limit - max_new
        if self.room < 1:
            raise UserError(f"{loaded.display} handles at most {limit} tokens: ask for fewer new tokens.")
        self.extra_cost = max_new

    def encode(self, pieces: list[Piece]) -> None:
        ids = self.encoder([p.text for p in pieces], truncation=False)["input_ids"]
        for piece, row in zip(pieces, ids, strict=True):
            if len(row) > self.room:
                row, piece.truncated = row[-self.room :], True
            piece.payload, piece.length = row, len(row)

    def defaults(self, device: str) -> tuple[int, int]:
        return (2048, 16) if device == "cpu" else (65536, 256)

    def truncation_note(self) -> str:
        return f"prompt too long: only its last {self.room:,} tokens were used"

    def run(self, pieces: list[Piece]) -> list[str]:
        from transformers import set_seed

        if self.seed >= 0:
            set_seed(self.seed)
        inputs = self.batch_tensors([p.payload for p in pieces], left=True)
        tokenizer = self.loaded.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        out = self.model.generate(**inputs, pad_token_id=pad, **self.kwargs)
        new = out[:, inputs["input_ids"].shape[1] :]
        return tokenizer.batch_decode(new, skip_special_tokens=True)

    def combine(self, text: str, outputs: list[Any], pieces: list[Piece]) -> dict[str, Any]:
        return {"generated_text": text + outputs[0]}


class Seq2SeqAdapter(Adapter):
    """Translation (long texts in sentence chunks, as in the tab) and summarization (cut and marked)."""

    def __init__(self, loaded: Loaded, task: str, options: dict[str, Any]) -> None:
        runner = loaded.obj
        super().__init__(loaded, runner.max_input_tokens)
        self.task = task
        if task == "translate":
            self.columns = ("translation",)
            self.kwargs = {"num_beams": 1, "max_new_tokens": min(512, 2 * self.limit)}
        else:
            from desktop.tasks import summarize

            low, high = (opt.check(options.get(opt.name, opt.default)) for opt in summarize.OPTIONS)
            if low > high:
                raise UserError(f"Min length ({low}) must not be more than max length ({high}).")
            self.columns = ("summary",)
            self.kwargs = {
                "min_new_tokens": min(high - 1, low),
                "max_new_tokens": high,
                "num_beams": 2,
                "no_repeat_ngram_size": 3,
            }
        self.extra_cost = self.kwargs["max_new_tokens"] * self.kwargs["num_beams"]

    def defaults(self, device: str) -> tuple[int, int]:
        return (4096, 16) if device == "cpu" else (65536, 256)

    def split(self, text: str) -> list[str]:
        if self.task != "translate":
            return [text]
        from desktop.tasks.text import pack_chunks, split_sentences

        def count(piece: str) -> int:
            return len(self.encoder(piece)["input_ids"])

        return pack_chunks(split_sentences(text), count, max(8, self.limit - 2)) or [text]

    def run(self, pieces: list[Piece]) -> list[str]:
        inputs = self.batch_tensors([p.payload for p in pieces])
        out = self.model.generate(**inputs, **self.kwargs)
        return [t.strip() for t in self.loaded.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def combine(self, text: str, outputs: list[Any], pieces: list[Piece]) -> dict[str, Any]:
        return {self.columns[0]: " ".join(o for o in outputs if o)}


def make_adapter(loaded: Loaded, task: str, options: dict[str, Any]) -> Adapter:
    """The adapter for ``task`` (a TaskSpec id) running ``loaded``."""
    if loaded.kind == "text-classification":
        return ClassifyAdapter(loaded, loaded.max_tokens)
    if loaded.kind == "token-classification":
        return NerAdapter(loaded, loaded.max_tokens)
    if loaded.kind == "text-generation":
        return GenerateAdapter(loaded, loaded.max_tokens, options)
    if loaded.kind == "seq2seq":
        return Seq2SeqAdapter(loaded, task, options)
    raise UserError(f"{task} cannot run on files.")


def quantized(adapter: Adapter) -> str | None:
    """Fast CPU mode: dynamic int8 weights for encoder models (kept with the loaded model).

    Returns a note for the user when the mode does not apply to this model.
    """
    if not isinstance(adapter, (ClassifyAdapter, NerAdapter)):
        return "Fast CPU mode applies to classification and NER models; this one runs at full precision."
    if adapter.device != "cpu":
        return "Fast CPU mode is for the CPU; the GPU already runs this model in 16-bit precision."
    model = adapter.loaded.extra.get("int8")
    if model is None:
        import warnings

        import torch
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = quantize_dynamic(copy.deepcopy(adapter.model), {torch.nn.Linear}, dtype=torch.qint8)
        adapter.loaded.extra["int8"] = model
    if isinstance(adapter, NerAdapter):
        adapter.use_model(model)
    else:
        adapter.model = model
    return None


def count_chart(adapter: Adapter, rows: Iterable[dict[str, Any]]) -> Counter[str]:
    """How often each label (or entity type) occurs in ``rows``."""
    counts: Counter[str] = Counter()
    for values in rows:
        counts.update(adapter.chart_values(values))
    return counts

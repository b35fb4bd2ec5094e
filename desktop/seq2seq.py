"""A small runner for encoder-decoder models (translation, summarization).

transformers 5 removed the translation and summarization pipelines, so this
does their job: AutoModelForSeq2SeqLM + generate, with long inputs split into
chunks the model can take (nothing is silently cut). Called only through
``Runtime.infer`` (one job at a time on the device).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.errors import Stopped
from desktop.tasks.text import pack_chunks, split_sentences


@dataclass
class Seq2SeqRunner:
    """An encoder-decoder model and its tokenizer on one device."""

    model: Any
    tokenizer: Any
    device: str

    @classmethod
    def load(cls, folder: Path, device: str, dtype: Any) -> Seq2SeqRunner:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSeq2SeqLM.from_pretrained(folder, dtype=dtype).to(device)
        model.eval()
        return cls(model=model, tokenizer=tokenizer, device=device)

    @property
    def max_input_tokens(self) -> int:
        limit = getattr(self.tokenizer, "model_max_length", None) or 512
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions:
            limit = min(limit, positions)
        return int(min(limit, 4096))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def chunk(self, text: str, budget: int | None = None) -> list[str]:
        """Split ``text`` at sentence ends into chunks of at most ``budget`` tokens."""
        budget = budget or self.max_input_tokens
        return pack_chunks(split_sentences(text), self.count_tokens, budget)

    def generate(self, texts: list[str], stop: Callable[[], bool] | None = None, **kwargs: Any) -> list[str]:
        """Generate one output per input text (inputs already within the token limit).

        Raises :class:`Stopped` when ``stop()`` became true while generating (what was made is dropped).
        """
        import torch

        batch = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_input_tokens,
        ).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(**batch, stopping_criteria=stop_when(stop), **kwargs)
        if stop is not None and stop():
            raise Stopped("Stopped: nothing was kept of the unfinished run.")
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def stop_when(stop: Callable[[], bool] | None) -> Any:
    """A transformers ``StoppingCriteriaList`` that ends ``generate`` once ``stop()`` is true
    (checked after every new token, on the generating thread); None when there is nothing to check."""
    if stop is None:
        return None
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), bool(stop()), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Stop()])

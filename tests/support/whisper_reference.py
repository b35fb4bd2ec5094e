"""Transcription as Pipedesk did it before CTranslate2 (main at commit 00540ca): transformers'
``WhisperForConditionalGeneration.generate`` in full precision, four 30-second windows per call,
the language detected per window, segments joined and shifted as the task does. The agreement test
(tests/test_transcribe.py) and benchmarks/transcribe.py compare the new path with it.

``decode_tokens`` (benchmarks: random weights) makes every window decode exactly that many tokens
(the end token suppressed), so two engines do the same work. Runs on the calling thread.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

WINDOW_SECONDS, SAMPLE_RATE, WINDOWS_PER_CALL = 30, 16_000, 4


class ReferenceWhisper:
    """The model in ``folder`` loaded as the old path loaded it (float32 on the CPU)."""

    def __init__(self, folder: Path, windows_per_call: int = WINDOWS_PER_CALL) -> None:
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        self.model = AutoModelForSpeechSeq2Seq.from_pretrained(folder).eval()
        self.processor = AutoProcessor.from_pretrained(folder)
        self.windows_per_call = windows_per_call
        config = self.model.generation_config
        self.languages = {
            int(i): t.strip("<|>") for t, i in (getattr(config, "lang_to_id", None) or {}).items()
        }

    def transcribe(
        self,
        samples: np.ndarray,
        language: str = "auto",
        timestamps: bool = False,
        decode_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The task's result data (text, segments, language) for 16 kHz mono ``samples``."""
        import torch

        size = WINDOW_SECONDS * SAMPLE_RATE
        windows = [samples[start : start + size] for start in range(0, len(samples), size)]
        outputs: list[dict[str, Any]] = []
        with torch.inference_mode():
            for first in range(0, len(windows), WINDOWS_PER_CALL):
                outputs += self._forward(
                    windows[first : first + WINDOWS_PER_CALL], language, timestamps, decode_tokens
                )
        return self._joined(outputs, len(samples) / SAMPLE_RATE, timestamps)

    def _forward(
        self, windows: list[np.ndarray], language: str, timestamps: bool, decode_tokens: int | None
    ) -> list[dict[str, Any]]:
        net, tokenizer = self.model, self.processor.tokenizer
        features = self.processor.feature_extractor(windows, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        encoded = net.get_encoder()(features.input_features)
        kwargs: dict[str, Any] = {"return_timestamps": timestamps}
        if decode_tokens is not None:
            kwargs.update(max_new_tokens=decode_tokens, suppress_tokens=[net.generation_config.eos_token_id])
        if not self.languages:
            languages = ["en"] * len(windows)
        else:
            if language == "auto":
                languages = [self.languages[int(i)] for i in net.detect_language(encoder_outputs=encoded)]
            else:
                languages = [language] * len(windows)
            kwargs.update(task="transcribe", language=languages)
        out = net.generate(encoder_outputs=encoded, **kwargs)
        rows = getattr(out, "sequences", out)
        decoded = []
        for row, spoken in zip(rows, languages, strict=True):
            found = tokenizer.decode([int(i) for i in row], output_offsets=True, skip_special_tokens=True)
            found = {"text": found, "offsets": []} if isinstance(found, str) else found
            decoded.append({**found, "language": spoken, "tokens": len(row)})
        return decoded

    @staticmethod
    def _joined(outputs: list[dict[str, Any]], seconds: float, timestamps: bool) -> dict[str, Any]:
        segments = []
        for part, out in enumerate(outputs):
            offset = part * WINDOW_SECONDS
            window_end = min(seconds, offset + WINDOW_SECONDS)
            pieces = (out.get("offsets") if timestamps else None) or [
                {"text": out["text"], "timestamp": (0.0, window_end - offset)}
            ]
            for piece in pieces:
                start, end = piece["timestamp"]
                end = window_end - offset if end is None else end
                segments.append(
                    {
                        "start": round(offset + float(start), 2),
                        "end": round(min(window_end, offset + float(end)), 2),
                        "text": piece["text"].strip(),
                    }
                )
        return {
            "text": " ".join(s["text"] for s in segments if s["text"]).strip(),
            "segments": segments,
            "language": Counter(out["language"] for out in outputs).most_common(1)[0][0],
            "tokens": [out["tokens"] for out in outputs],
        }

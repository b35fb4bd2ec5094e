"""Whisper on CTranslate2: the model converted once into the store, run in int8 where the processor
gains and in half precision on a GPU, windows in batches.

Why this engine (benchmarks/README.md, ``benchmarks/transcribe.py``): on the CPU it ran Whisper
several times faster than transformers in full precision, and faster than int8 linear layers in
torch; it is the engine of faster-whisper, which we match or beat by batching windows. The first
time a Whisper model is used its weights are converted (16-bit, as Whisper's own checkpoints are)
into the models folder (:meth:`desktop.models.store.ModelStore.converted_copy`), written to a private
folder and renamed into place, so a half-written copy is never used; later runs load the copy.

int8 or full precision on the CPU is decided per processor, like Fast CPU mode for text
(:func:`desktop.engine.fastcpu.remembered_speedup`): the first time, one window is encoded both ways
and int8 is used only where it was at least 5% faster. So is the encoder: where torch encodes
windows in bfloat16 at least 5% faster than CTranslate2 (processors with AMX or AVX512-BF16: 3x
here), :class:`TorchEncoder` encodes them and CTranslate2 decodes its encodings. CTranslate2's
decoding (bound by memory: its cross-attention cache is float32 on the CPU) stays, as a torch
bfloat16 decoder measured slower. GPUs run float16.

Threads: loading (and the one-time conversion) runs on the thread that loads the model, under the
runtime's load lock for that model; :class:`WhisperModel`'s calls run inside a task's ``forward``,
under the device lock. CTranslate2 computes on its own threads: on the CPU in several streams (one
replica per stream, the weights shared), each decoding its share of the batch's windows; while
Python waits for a batch it checks ``stop()``, and a stopped batch's result is dropped (the
computation ends in the background). Encoding and alignment spread their windows over the streams
from short-lived Python threads (CTranslate2 releases the interpreter lock while it computes).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.engine.speedups import MIN_SPEEDUP, fastest, remembered_speedup
from desktop.hf import transformers_api

log = logging.getLogger(__name__)

#: What the converted copy keeps on disk: 16-bit weights (half the size; int8 or float32 at load).
STORED_AS = "float16"
#: The engine's name in the models folder (``converted/ctranslate2-...``).
ENGINE = "ctranslate2"
#: Frames of log-mel features in a window.
FRAMES = 3000
#: The longest a window's text may be, in tokens (CTranslate2 decodes up to half of this: 224).
MAX_LENGTH = 448
_POLL_SECONDS = 0.02
#: The most CPU streams (measured with 2 cores only; beyond 4 each stream's batch gets small).
MAX_STREAMS = 4


@dataclass(frozen=True)
class Placement:
    """Where and how CTranslate2 runs a model: its device, device index and computation type."""

    device: str
    index: int
    compute_type: str


def placement(device: str, int8: bool) -> Placement:
    """``device`` as CTranslate2 names it: a GPU in float16; the CPU (also for Apple MPS, which
    CTranslate2 does not drive) in int8 when ``int8``, else float32."""
    if device.startswith("cuda"):
        index = device.partition(":")[2]
        return Placement("cuda", int(index) if index else 0, "float16")
    return Placement("cpu", 0, "int8" if int8 else "float32")


def streams(threads: int) -> int:
    """How many streams decode at once on ``threads`` CPU threads: one per thread up to
    :data:`MAX_STREAMS` (each then gets ``threads // streams`` threads). Decoding is many small
    products that one core runs about as fast as two (benchmarks/README.md: two streams of one
    thread decoded 1.7x faster than one stream of two on 2 cores)."""
    return max(1, min(threads, MAX_STREAMS))


def convert(
    source: Path, target: Path, progress: Callable[..., None] | None = None, display: str = ""
) -> Path:
    """The CTranslate2 copy of the Whisper in ``source`` at ``target``, converted now if it is not
    there yet (into a private folder renamed into place: two processes converting at once both end
    with a complete copy)."""
    if (target / "model.bin").is_file():
        return target
    if progress:
        progress(0, 0, f"Preparing {display or source.name} for fast transcription (once, about a minute)")
    started = time.perf_counter()
    transformers_api("AutoConfig", "AutoTokenizer", "WhisperForConditionalGeneration")
    from ctranslate2.converters import TransformersConverter

    scratch = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        TransformersConverter(str(source), low_cpu_mem_usage=True).convert(
            str(scratch), quantization=STORED_AS, force=True
        )
        (scratch / "source.json").write_text(json.dumps({"source": str(source)}), encoding="utf-8")
        if not (target / "model.bin").is_file():  # else another process finished first: use its copy
            shutil.rmtree(target, ignore_errors=True)  # a copy left without its weights is never used
            scratch.rename(target)
    except OSError:
        if not (target / "model.bin").is_file():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("Converted %s for CTranslate2 in %.1fs", source, time.perf_counter() - started)
    return target


class WhisperModel:
    """A converted Whisper loaded in CTranslate2, with the calls a transcription task makes.

    ``generation_config`` is the model's own (its languages, special tokens); token ids in and out.
    """

    def __init__(self, source: Path, converted: Path, where: Placement, threads: int) -> None:
        import ctranslate2
        import torch

        tf = transformers_api("GenerationConfig")
        self.generation_config = tf.GenerationConfig.from_pretrained(source)
        self.source, self.converted, self.placement = source, converted, where
        self.device = where.device if where.device == "cpu" else f"cuda:{where.index}"
        #: On the CPU, independent streams (CTranslate2 replicas sharing the weights) that each run
        #: a share of the windows on their own cores; on a GPU one.
        self.streams = streams(threads) if where.device == "cpu" else 1
        self._model = ctranslate2.models.Whisper(
            str(converted),
            device=where.device,
            device_index=where.index,
            compute_type=where.compute_type,
            intra_threads=max(1, threads // self.streams),
            inter_threads=self.streams,
        )
        # CTranslate2 set this thread's OpenMP threads to its own (one per stream): torch reads them.
        torch.set_num_threads(threads)
        stored = (converted / "model.bin").stat().st_size
        self.nbytes = (
            stored // 2 if where.compute_type == "int8" else stored * (2 if where.device == "cpu" else 1)
        )
        #: Whisper's encoder in torch bfloat16, where this processor runs it faster (set by :func:`load`).
        self.encoder: TorchEncoder | None = None

    def with_encoder(self, encoder: TorchEncoder) -> WhisperModel:
        """This model, its windows encoded by ``encoder`` (CTranslate2 decodes what it encodes)."""
        self.encoder = encoder
        self.nbytes += encoder.nbytes
        return self

    def encode(self, features: Any, stop: Callable[[], bool] | None = None) -> Any:
        """Log-mel features (numpy, ``[windows, mels, 3000]``) through the encoder: a numpy array
        ``[windows, 1500, width]``, or None when ``stop()`` turned true. On the CPU one window per
        stream at a time (as fast as a batch there, and Stop is noticed between them); on a GPU all
        at once."""
        import numpy as np

        features = np.ascontiguousarray(features, dtype=np.float32)
        if self.encoder is not None:
            return self.encoder.encode(features, stop)
        step = self.streams if self.placement.device == "cpu" else len(features)
        parts: list[Any] = []
        for start in range(0, len(features), step):
            if stop is not None and stop():
                return None
            group = features[start : start + step]
            if self.placement.device == "cpu":
                parts += self._spread(len(group), lambda lo, hi, g=group: [self._encode(g[lo:hi])])
            else:
                parts.append(self._encode(group))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _encode(self, features: Any) -> Any:
        import numpy as np

        return np.array(self._model.encode(_storage(features), to_cpu=True))

    def _spread(self, rows: int, call: Callable[[int, int], list[Any]]) -> list[Any]:
        """``call(lo, hi)`` for the rows cut into one contiguous part per stream, the parts run at
        once (each on a replica of its own); their results joined in order."""
        parts = self._parts(rows)
        if len(parts) <= 1:
            return call(0, rows)
        with ThreadPoolExecutor(len(parts), thread_name_prefix="whisper") as pool:
            return [item for found in pool.map(lambda part: call(*part), parts) for item in found]

    def _parts(self, rows: int) -> list[tuple[int, int]]:
        """``rows`` cut into one contiguous (lo, hi) part per stream (fewer when there are fewer rows)."""
        cuts = [rows * i // self.streams for i in range(self.streams + 1)]
        return [(lo, hi) for lo, hi in itertools.pairwise(cuts) if lo < hi] or [(0, rows)]

    def detect_language(self, encoded: Any) -> list[str]:
        """The most likely language of each window (codes such as ``en``), from its encoding."""
        ranked = self._spread(
            len(encoded), lambda lo, hi: self._model.detect_language(_storage(encoded[lo:hi]))
        )
        return [languages[0][0].strip("<|>") for languages in ranked]

    def generate(
        self, encoded: Any, prompts: list[list[int]], stop: Callable[[], bool] | None = None
    ) -> list[list[int]] | None:
        """Greedy decoding of each window from its prompt: the tokens after the prompt (timestamps
        included unless the prompt ends with ``<|notimestamps|>``). None when ``stop()`` turned true
        meanwhile (the batch's result is then dropped when it is done)."""
        pending = [
            result
            for lo, hi in self._parts(len(prompts))
            for result in self._model.generate(
                _storage(encoded[lo:hi]),
                prompts[lo:hi],
                asynchronous=True,  # each part on a stream of its own
                beam_size=1,
                max_length=MAX_LENGTH,
                suppress_blank=True,
                suppress_tokens=[-1],
            )
        ]
        while not all(result.done() for result in pending):
            if stop is not None and stop():
                _abandoned.append(pending)
                return None
            time.sleep(_POLL_SECONDS)
        return [list(result.result().sequences_ids[0]) for result in pending]

    def align(
        self, encoded: Any, start: list[int], texts: list[list[int]], frames: list[int]
    ) -> list[list[tuple[int, int]]]:
        """For each window, where its text tokens are heard: (token index, encoder position) pairs from
        the alignment heads' cross-attention (dynamic time warping); ``start`` is the prompt before
        ``<|notimestamps|>``, ``frames`` the feature frames that hold sound."""
        if not any(texts):
            return [[] for _ in texts]
        found = self._spread(
            len(texts),
            lambda lo, hi: self._model.align(_storage(encoded[lo:hi]), start, texts[lo:hi], frames[lo:hi]),
        )
        return [[(int(t), int(p)) for t, p in result.alignments] for result in found]


class TorchEncoder:
    """Whisper's encoder in torch, bfloat16: on processors with fast bfloat16 products (Intel AMX,
    AVX512-BF16) it encodes a window several times faster than CTranslate2's int8 encoder
    (benchmarks/README.md), and the windows' encodings then go to CTranslate2's decoder as they
    would from its own encoder. Used only where :func:`load` measured it faster on this processor.
    Runs on the calling thread, with torch's threads."""

    def __init__(self, source: Path) -> None:
        import torch

        tf = transformers_api("WhisperForConditionalGeneration")
        whole = tf.WhisperForConditionalGeneration.from_pretrained(source, dtype=torch.bfloat16)
        self.module = whole.get_encoder().eval()  # the decoder's weights are dropped with ``whole``
        self.nbytes = sum(t.numel() * t.element_size() for t in self.module.parameters())

    def encode(self, features: Any, stop: Callable[[], bool] | None = None) -> Any:
        """As :meth:`WhisperModel.encode`: one window at a time (as fast as a batch, and Stop is
        noticed between windows), float32 numpy out."""
        import numpy as np
        import torch

        parts = []
        with torch.inference_mode():
            for window in features:
                if stop is not None and stop():
                    return None
                inputs = torch.from_numpy(window[None]).to(torch.bfloat16)
                parts.append(self.module(inputs).last_hidden_state.float().numpy())
        return np.concatenate(parts)


#: Batches whose result Stop dropped while CTranslate2 still decodes them on its own threads.
_abandoned: list[list[Any]] = []


def computing_after_stop() -> bool:
    """Whether CTranslate2 still decodes a batch that Stop dropped (it cannot be interrupted: the
    engine process then ends and starts again cold, :mod:`desktop.engine.process`)."""
    _abandoned[:] = [pending for pending in _abandoned if not all(r.done() for r in pending)]
    return bool(_abandoned)


def int8_engine() -> str:
    """What int8's speedup is remembered for, beside the processor: this engine and its version."""
    import ctranslate2

    return f"ctranslate2 {ctranslate2.__version__} whisper"


def bf16_engine() -> str:
    """What the torch encoder's speedup over CTranslate2's is remembered for, beside the processor."""
    import ctranslate2
    import torch

    return f"torch {torch.__version__} bfloat16 whisper encoder, ctranslate2 {ctranslate2.__version__}"


def _storage(array: Any) -> Any:
    import ctranslate2
    import numpy as np

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


def load(
    source: Path,
    converted: Path,
    device: str,
    progress: Callable[..., None] | None = None,
    display: str = "",
) -> WhisperModel:
    """The Whisper in ``source`` ready on ``device``: converted into ``converted`` on first use; on the
    CPU in int8 where this processor runs it faster (measured once, remembered), else float32, its
    encoder in torch bfloat16 where that is faster still."""
    import numpy as np
    import torch

    convert(source, converted, progress, display)
    threads = torch.get_num_threads()
    if device.startswith("cuda"):
        try:
            return WhisperModel(source, converted, placement(device, int8=False), threads)
        except RuntimeError as exc:  # CTranslate2 without CUDA, or the GPU's libraries not found
            log.warning("Whisper runs on the CPU: CTranslate2 could not use %s (%s)", device, exc)
    int8 = WhisperModel(source, converted, placement("cpu", int8=True), threads)
    full: WhisperModel | None = None

    def measure() -> float:  # one window of silence encoded both ways
        nonlocal full
        full = WhisperModel(source, converted, placement("cpu", int8=False), threads)
        window = np.zeros((1, full._model.n_mels, FRAMES), dtype=np.float32)
        return fastest(lambda: full._encode(window)) / fastest(lambda: int8._encode(window))

    if remembered_speedup(int8_engine(), measure) >= MIN_SPEEDUP:
        chosen = int8
    else:  # the full-precision model the measurement loaded, if it just ran
        chosen = full or WhisperModel(source, converted, placement("cpu", int8=False), threads)
    return _with_faster_encoder(chosen, source)


def _with_faster_encoder(model: WhisperModel, source: Path) -> WhisperModel:
    """``model`` with its windows encoded in torch bfloat16 where this processor runs that at least
    5% faster than CTranslate2 (measured once on as many windows as there are streams, remembered;
    only on processors with bfloat16 arithmetic of their own, where it can win)."""
    import numpy as np

    if model.placement.device != "cpu" or not bf16_native():
        return model
    encoder: TorchEncoder | None = None
    windows = np.zeros((model.streams, model._model.n_mels, FRAMES), dtype=np.float32)

    def measure() -> float:
        nonlocal encoder
        encoder = TorchEncoder(source)
        return fastest(lambda: model.encode(windows)) / fastest(lambda: encoder.encode(windows))

    if remembered_speedup(bf16_engine(), measure) < MIN_SPEEDUP:
        return model
    return model.with_encoder(encoder or TorchEncoder(source))


def bf16_native() -> bool:
    """Whether this processor computes in bfloat16 itself (Intel AMX, AVX512-BF16). Elsewhere torch
    emulates bfloat16, slower than float32, and measuring it on a large Whisper would take minutes."""
    import torch

    checks = [
        getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    return any(check() for check in checks if check is not None)

"""Transcription speed and memory: the old transformers path, Pipedesk's path, faster-whisper int8.

Run by hand (not a test)::

    .venv/bin/pip install --no-deps --target /tmp/fw faster-whisper==1.2.1   # only for this benchmark
    .venv/bin/python benchmarks/transcribe.py --faster-whisper /tmp/fw
    .venv/bin/python benchmarks/transcribe.py --sizes base --minutes 4 --rounds 3
    .venv/bin/python benchmarks/transcribe.py --rss            # peak memory, a one-hour recording

Models: Whisper base and small as published (base: 512 wide, 6+6 layers, 8 heads; small: 768
wide, 12+12 layers, 12 heads; 80 mel bins, 51,865 tokens), with random weights (no real weights
can be downloaded here) and a synthetic tokenizer laid out as Whisper's. The weights make the end
token and the timestamps lose every time (their output rows point against the final layer norm's
bias), so every window decodes exactly ``--tokens`` text tokens (100 by default: about 30 seconds of speech) in every method,
and the benchmark checks that they did.

Methods, each on the same recording (``--minutes`` of speech-band noise, a WAV file decoded by
Pipedesk's own decoder), language English, no timestamps, greedy, ``--threads`` CPU threads:

1. **old path**: transformers' ``generate`` in float32, four windows per call, as Pipedesk did before
   (tests/support/whisper_reference.py);
2. **Pipedesk**: ``SPEC.predict`` through the runtime (CTranslate2, int8 where this processor gains,
   windows in batches of 8 shared out among one decoding stream per core, the encoder in torch
   bfloat16 where this processor runs it faster): what the tab, the API, ``pipedesk run`` and file
   runs use;
3. **faster-whisper int8**: ``WhisperModel(compute_type="int8").transcribe`` on the same converted
   model, one window after another (its default), with its fallbacks and VAD off;
4. with ``--torch-int8``: transformers with dynamic int8 ``Linear`` layers, 8 windows per call (the
   other way the issue offered, measured to choose).

After a one-window warm-up of Pipedesk and faster-whisper (their first call loads and converts),
methods run in turn within each round (``--rounds``), so other work on a shared machine slows them
alike; the table has each method's median seconds, its real-time factor (seconds per second of
audio) and the ratios. ``--rss`` runs each method in a fresh process on a one-hour recording
(decoded whole, then the first ``--rss-windows`` windows transcribed; 0: all) and prints its peak
resident memory. ``--parts`` times encoding and decoding of one batch of 8 windows apart, for each
engine and precision (CTranslate2 in one stream or in streams, torch float32 and bfloat16): why
Pipedesk encodes and decodes with what it does on this processor.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Pipedesk's folders for the benchmark: the converted models and the int8 decision kept between runs.
os.environ.setdefault("PIPEDESK_HOME", str(ROOT / "tests" / ".artifacts" / "bench-whisper" / "home"))

SIZES = {
    "base": {"d_model": 512, "layers": 6, "heads": 8, "ffn": 2048},
    "small": {"d_model": 768, "layers": 12, "heads": 12, "ffn": 3072},
}
# fmt: off
LANGUAGES = (  # Whisper's 99 languages, in its tokenizer's order
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id",
    "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg",
    "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br",
    "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so",
    "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt",
    "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su",
)
# fmt: on
SAMPLE_RATE, WINDOW = 16_000, 30
METHODS = ("old path", "Pipedesk", "faster-whisper int8", "torch int8")


# --- the models --------------------------------------------------------------------------------


def synthetic_tokenizer() -> tuple[Any, list[str]]:
    """51,865 tokens in Whisper's layout: 50,257 text tokens (bytes and pairs of bytes, the last one
    empty as in multilingual Whisper), <|endoftext|>, the specials, 99 languages, 1,501 timestamps."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {char: i for i, char in enumerate(alphabet)}
    merges = []
    for a, b in itertools.product(alphabet, alphabet):
        if len(vocab) >= 50_256:
            break
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    vocab[""] = 50_256
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in LANGUAGES)]
    specials += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>"]
    specials += ["<|notimestamps|>"]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", normalized=False) for i in range(1501)])
    assert tokenizer.get_vocab_size() == 51_865
    return tokenizer, specials


def build_model(size: str, folder: Path) -> Path:
    """Whisper ``size``'s published shape with random weights whose end token never wins."""
    if (folder / "model.safetensors").is_file():
        return folder
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    from tests.support.tiny_media import whisper_generation_config

    shape = SIZES[size]
    tokenizer, specials = synthetic_tokenizer()
    ids = tokenizer.token_to_id
    eot, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    config = WhisperConfig(
        vocab_size=51_865,
        num_mel_bins=80,
        d_model=shape["d_model"],
        encoder_layers=shape["layers"],
        decoder_layers=shape["layers"],
        encoder_attention_heads=shape["heads"],
        decoder_attention_heads=shape["heads"],
        encoder_ffn_dim=shape["ffn"],
        decoder_ffn_dim=shape["ffn"],
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # the final layer norm adds 10*u; the rows of <|endoftext|> and every
        # token after it (specials, timestamps) are -u: their logits ~ -10, text tokens' ~ 0
        direction = torch.nn.functional.normalize(torch.randn(shape["d_model"]), dim=0)
        model.model.decoder.layer_norm.bias.copy_(10 * direction)
        model.model.decoder.embed_tokens.weight[eot:] = -direction
    model.generation_config = whisper_generation_config(ids, LANGUAGES, begin_suppress=[220, eot])
    scratch = folder.with_name(folder.name + ".partial")
    model.save_pretrained(scratch, safe_serialization=True)
    fast = WhisperTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=specials,
        model_max_length=448,
    )
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=fast
    ).save_pretrained(scratch)
    scratch.rename(folder)
    return folder


def recording(folder: Path, minutes: float) -> Path:
    """``minutes`` of speech-band noise in syllables (tests/support/tiny_media.babble) as a WAV file."""
    from tests.support.tiny_media import babble, write_wav

    path = folder / f"speech-{minutes:g}min.wav"
    if not path.is_file():
        write_wav(path, babble(minutes * 60, seed=3))
    return path


# --- the methods ---------------------------------------------------------------------------------


class Methods:
    """Each method ready to run on one model; each call returns the tokens decoded per window."""

    def __init__(self, size: str, folder: Path, tokens: int, threads: int, fw_path: str | None) -> None:
        import torch

        from desktop.engine import whisper
        from desktop.engine.runtime import Runtime
        from desktop.models import ModelStore
        from desktop.tasks import TASKS

        torch.set_num_threads(threads)
        self.size, self.folder, self.tokens, self.threads = size, folder, tokens, threads
        whisper.MAX_LENGTH = 2 * tokens  # CTranslate2 decodes half of it: exactly ``tokens`` here
        self.spec = TASKS["transcribe"]
        self.runtime = Runtime(device="cpu", store=ModelStore(Path(os.environ["PIPEDESK_HOME"]) / "models"))
        self.loaded = self.runtime.load(self.spec, str(folder))  # converts (once) and decides int8
        self.loaded.model.generate = self._count(self.loaded.model.generate)
        self.fw_path = fw_path
        self._old = self._fw = self._q8 = None

    def converted(self) -> Path:
        return self.loaded.model.converted

    def run(self, method: str, wav: Path, samples: Any, windows: int | None = None) -> list[int]:
        return getattr(self, "_" + method.replace(" ", "_").replace("-", "_"))(wav, samples, windows)

    def _old_path(self, wav: Path, samples: Any, windows: int | None) -> list[int]:
        if self._old is None:
            from tests.support.whisper_reference import ReferenceWhisper

            self._old = ReferenceWhisper(self.folder)
        if windows:
            samples = samples[: windows * WINDOW * SAMPLE_RATE]
        return self._old.transcribe(samples, "en", False, decode_tokens=self.tokens)["tokens"]

    def _torch_int8(self, wav: Path, samples: Any, windows: int | None) -> list[int]:
        import torch

        from tests.support.whisper_reference import ReferenceWhisper

        if self._q8 is None:
            self._q8 = ReferenceWhisper(self.folder, windows_per_call=8)
            self._q8.model = torch.ao.quantization.quantize_dynamic(
                self._q8.model, {torch.nn.Linear}, torch.qint8
            )
        return self._q8.transcribe(samples, "en", False, decode_tokens=self.tokens)["tokens"]

    def _Pipedesk(self, wav: Path, samples: Any, windows: int | None) -> list[int]:
        self._counts: list[int] = []
        seen: list[int] = []
        stop = (lambda: len(seen) > (windows + 7) // 8) if windows else None  # noqa: E731
        try:
            self.spec.predict(
                self.runtime, str(wav), str(self.folder), "en", False, False,
                progress=lambda done, total, desc, **_: seen.append(done), stop=stop,
            )  # fmt: skip
        except Exception as exc:  # Stopped after ``windows`` (the memory run)
            if type(exc).__name__ != "Stopped":
                raise
        return self._counts

    def _count(self, generate: Any) -> Any:
        """``generate`` that also notes how many tokens each window decoded (the benchmark's check)."""

        def counting(encoded: Any, prompts: list[list[int]], stop: Any = None) -> Any:
            out = generate(encoded, prompts, stop)
            self._counts += [len(tokens) for tokens in out or []]
            return out

        return counting

    def _faster_whisper_int8(self, wav: Path, samples: Any, windows: int | None) -> list[int]:
        if self._fw is None:
            if self.fw_path:
                sys.path.insert(0, self.fw_path)
            from faster_whisper import WhisperModel

            folder = Path(tempfile.mkdtemp(prefix="fw-model-"))
            for name in ("model.bin", "config.json", "vocabulary.json"):
                (folder / name).symlink_to(self.converted() / name)
            shutil.copy(self.folder / "tokenizer.json", folder / "tokenizer.json")
            self._fw = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=self.threads)
        segments, _info = self._fw.transcribe(
            samples,
            language="en",
            beam_size=1,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            compression_ratio_threshold=None,
            log_prob_threshold=None,
            no_speech_threshold=None,
            max_new_tokens=2 * self.tokens - 4,  # its 4-token prompt and CTranslate2 halving: ``tokens``
            vad_filter=False,
        )
        return [len(s.tokens) for s in itertools.islice(segments, windows or None)]


# --- running -----------------------------------------------------------------------------------


def machine(threads: int) -> str:
    import ctranslate2
    import torch
    import transformers

    from desktop.engine.speedups import cpu_name

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, {threads} threads, {memory:.0f} GiB RAM; "
        f"load average {os.getloadavg()[0]:.1f}\nVersions: Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, ctranslate2 {ctranslate2.__version__}"
    )


def speed(args: argparse.Namespace, models: Path, work: Path) -> None:
    from desktop.files.audio import load_audio

    wav = recording(work, args.minutes)
    samples = load_audio(str(wav)).samples
    seconds = len(samples) / SAMPLE_RATE
    methods = [m for m in METHODS if (m != "torch int8" or args.torch_int8)]
    for size in args.sizes:
        ready = Methods(
            size,
            build_model(size, models / f"whisper-{size}"),
            args.tokens,
            args.threads,
            args.faster_whisper,
        )
        print(
            f"\nWhisper {size} (random weights), {seconds / 60:g} min of audio, {args.tokens} tokens per window"
        )
        print(f"Pipedesk runs {engine_of(ready.loaded.model)} on this processor")
        times: dict[str, list[float]] = {m: [] for m in methods}
        first = recording(work, 0.5)
        for method in methods:  # warm-up: one window each (the old path's first call needs none)
            if method != "old path":
                ready.run(method, first, samples[: WINDOW * SAMPLE_RATE])
        for round_ in range(args.rounds):
            order = methods[round_ % len(methods) :] + methods[: round_ % len(methods)]
            for method in order:
                started = time.perf_counter()
                counts = ready.run(method, wav, samples)
                times[method].append(time.perf_counter() - started)
                if set(counts) != {args.tokens}:
                    sys.exit(
                        f"{method} decoded {counts}, not {args.tokens} tokens per window: not comparable"
                    )
                print(f"  round {round_ + 1}: {method:22s} {times[method][-1]:7.1f} s", flush=True)
        medians = {m: statistics.median(t) for m, t in times.items()}
        print(
            f"\n| Whisper {size} | seconds (median) | real-time factor | Pipedesk is |\n|---|---:|---:|---:|"
        )
        for method in methods:
            ratio = medians[method] / medians["Pipedesk"]
            print(f"| {method} | {medians[method]:.1f} | {medians[method] / seconds:.3f} | {ratio:.2f}x |")


def engine_of(model: Any) -> str:
    encoder = "torch bfloat16" if model.encoder is not None else "CTranslate2"
    return f"CTranslate2 {model.placement.compute_type} in {model.streams} streams, encoder {encoder}"


def parts(args: argparse.Namespace, models: Path) -> None:
    """Where a batch's time goes: encoding and decoding 8 windows, each engine and precision alone."""
    import ctranslate2
    import numpy as np
    import torch
    from transformers import WhisperForConditionalGeneration

    from desktop.engine import whisper

    windows = 8
    features = (np.random.default_rng(0).standard_normal((windows, 80, 3000)) * 0.3).astype(np.float32)
    for size in args.sizes:
        ready = Methods(size, build_model(size, models / f"whisper-{size}"), args.tokens, args.threads, None)
        folder, converted = ready.folder, ready.converted()
        config = ready.loaded.model.generation_config
        start = [config.decoder_start_token_id, config.lang_to_id["<|en|>"], config.task_to_id["transcribe"]]
        prompts = [[*start, config.no_timestamps_token_id]] * windows
        print(
            f"\nWhisper {size}: {windows} windows, {args.tokens} tokens each; Pipedesk: {engine_of(ready.loaded.model)}"
        )
        print("| part | engine | seconds |\n|---|---|---:|")
        rows: list[tuple[str, str, float]] = []
        for label, streams in (("one stream", 1), ("streams", whisper.streams(args.threads))):
            model = whisper.WhisperModel(folder, converted, ready.loaded.model.placement, args.threads)
            model.streams = streams
            precision = model.placement.compute_type
            if streams == 1:  # as Pipedesk ran before: one replica on every thread
                model._model = ctranslate2.models.Whisper(
                    str(converted), device="cpu", compute_type=precision, intra_threads=args.threads
                )
                torch.set_num_threads(args.threads)
            encoded = model.encode(features)
            engine = f"CTranslate2 {precision}, {label}"
            rows.append(("encode", engine, _timed(model.encode, features)))
            rows.append(("decode", engine, _timed(model.generate, encoded, prompts)))
        for dtype in (torch.float32, torch.bfloat16):
            net = WhisperForConditionalGeneration.from_pretrained(folder, dtype=dtype).eval()
            inputs = torch.from_numpy(features).to(dtype)
            precision = str(dtype).removeprefix("torch.")
            with torch.inference_mode():
                encoder = net.get_encoder()
                rows.append(
                    ("encode", f"torch {precision}, one window a call", _timed(_one_by_one, encoder, inputs))
                )
                decode = functools.partial(
                    net.generate, encoder_outputs=encoder(inputs), language="en", task="transcribe",
                    max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                )  # fmt: skip
                rows.append(("decode", f"torch {precision}, transformers' generate", _timed(decode)))
        for part, engine, seconds in sorted(rows, key=lambda row: row[0] != "encode"):
            print(f"| {part} | {engine} | {seconds:.2f} |", flush=True)


def _one_by_one(encoder: Any, windows: Any) -> list[Any]:
    return [encoder(windows[i : i + 1]) for i in range(len(windows))]


def _timed(call: Any, *args: Any) -> float:
    """The fastest of two timed calls, after a warm-up call (as Pipedesk measures its speedups)."""
    from desktop.engine.speedups import fastest

    return fastest(functools.partial(call, *args))


def memory(args: argparse.Namespace, models: Path, work: Path) -> None:
    recording(work, 60)  # written once, read by each child
    for size in args.sizes:
        folder = build_model(size, models / f"whisper-{size}")
        Methods(size, folder, args.tokens, args.threads, args.faster_whisper)  # converted before measuring
        print(
            f"\nWhisper {size}: peak resident memory, one-hour recording ({args.rss_windows or 'all'} windows)"
        )
        for method in ("old path", "Pipedesk", "faster-whisper int8"):
            command = [
                sys.executable,
                __file__,
                "--rss-child",
                method,
                "--sizes",
                size,
                "--tokens",
                str(args.tokens),
            ]
            command += [
                "--threads",
                str(args.threads),
                "--rss-windows",
                str(args.rss_windows),
                "--work",
                str(work),
            ]
            command += ["--faster-whisper", args.faster_whisper] if args.faster_whisper else []
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
            if done.returncode:
                sys.exit(done.stderr[-2000:])
            print(
                f"  {method:22s} {json.loads(done.stdout.splitlines()[-1])['peak_mb']:8,.0f} MB", flush=True
            )


def memory_child(args: argparse.Namespace, models: Path, work: Path) -> None:
    from desktop.files.audio import load_audio

    size = args.sizes[0]
    ready = Methods(
        size, build_model(size, models / f"whisper-{size}"), args.tokens, args.threads, args.faster_whisper
    )
    wav = recording(work, 60)
    samples = None if args.rss_child == "Pipedesk" else load_audio(str(wav)).samples
    ready.run(args.rss_child, wav, samples, args.rss_windows or None)
    print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["base", "small"], choices=sorted(SIZES))
    parser.add_argument("--minutes", type=float, default=4.0, help="length of the recording timed")
    parser.add_argument("--tokens", type=int, default=100, help="tokens decoded per 30-second window")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--faster-whisper", default=None, metavar="DIR", help="where faster-whisper is installed"
    )
    parser.add_argument(
        "--torch-int8", action="store_true", help="also time transformers with int8 Linear layers"
    )
    parser.add_argument("--rss", action="store_true", help="peak memory for a one-hour recording, per method")
    parser.add_argument(
        "--rss-windows", type=int, default=16, help="windows transcribed in the memory runs (0: all)"
    )
    parser.add_argument("--parts", action="store_true", help="encoding and decoding timed apart, per engine")
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    models = ROOT / "tests" / ".artifacts" / "bench-whisper"
    work = Path(args.work or tempfile.mkdtemp(prefix="transcribe-bench-"))
    models.mkdir(parents=True, exist_ok=True)
    if args.rss_child:
        memory_child(args, models, work)
        return 0
    print(machine(args.threads))
    if args.parts:
        parts(args, models)
    elif args.rss:
        memory(args, models, work)
    else:
        speed(args, models, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

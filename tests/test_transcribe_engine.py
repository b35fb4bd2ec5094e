"""The fast transcription path (desktop/engine/whisper.py, desktop/tasks/transcribe.py): Whisper on
CTranslate2 with windows in batches, int8 where the processor gains, converted once into the store;
it hears what the old transformers path heard (tests/support/whisper_reference.py), times words,
stops when asked, and every way in (the API, ``pipedesk run``, ``pipedesk batch``) offers WebVTT,
SubRip and word times.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from desktop import settings
from desktop.engine import whisper
from desktop.engine.speedups import speedup_key
from desktop.errors import Stopped
from desktop.files import audio
from desktop.models.ref import ModelRef
from desktop.tasks import TASKS
from tests.support import cli_env, run_cli
from tests.support.recordings import COMPRESSED, make_recordings
from tests.support.tiny_media import tone, write_wav

WHISPER = "openai/whisper-base"
SPEC = TASKS["transcribe"]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    made = make_recordings(tmp_path_factory.mktemp("recordings"))
    folder = tmp_path_factory.mktemp("long")
    made["lecture.wav"] = write_wav(folder / "lecture.wav", tone(150.0))  # five windows
    return made


@pytest.fixture(scope="module")
def reference(tiny_models):
    from tests.support.whisper_reference import ReferenceWhisper

    return ReferenceWhisper(tiny_models[WHISPER])


def fresh_runtime(hub, root: Path, int8_speedup: float, bf16_speedup: float = 0.5):
    """A CPU runtime with its own models folder, this processor's speedups set: int8's over float32
    (``int8_speedup``) and the torch bfloat16 encoder's over CTranslate2's (``bf16_speedup``)."""
    from desktop.engine.runtime import Runtime
    from desktop.models import ModelStore

    settings.update(
        fast_cpu_speedups={
            speedup_key(whisper.int8_engine()): int8_speedup,
            speedup_key(whisper.bf16_engine()): bf16_speedup,
        }
    )
    return Runtime(device="cpu", store=ModelStore(root))


CASES = [
    ("tone.wav", "auto", False),
    ("babble.wav", "auto", True),
    ("babble.wav", "fr", True),
    ("tone.wav", "fr", False),
    ("tone-44k-stereo.wav", "auto", True),
    *((name, "auto", False) for name, _codec, _rate in COMPRESSED),
    ("lecture.wav", "auto", True),
    ("lecture.wav", "en", False),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("speedup", "compute_type", "bf16_speedup"),
    [(2.0, "int8", 0.5), (0.5, "float32", 0.5), (2.0, "int8", 2.0)],
    ids=["int8", "float32", "int8 with the bfloat16 encoder"],
)
def test_the_batched_path_hears_what_the_old_path_heard(
    hub, tmp_path, recordings, reference, speedup, compute_type, bf16_speedup, monkeypatch
):
    monkeypatch.setattr(whisper, "bf16_native", lambda: True)  # the encoder runs on any processor
    runtime = fresh_runtime(hub, tmp_path / "models", speedup, bf16_speedup)
    for name, language, timestamps in CASES:
        new = SPEC.predict(runtime, str(recordings[name]), WHISPER, language, timestamps, False)
        old = reference.transcribe(audio.load_audio(str(recordings[name])).samples, language, timestamps)
        case = f"{name} ({language}, timestamps {timestamps})"
        assert new.data["text"] == old["text"], case
        assert new.data["segments"] == old["segments"], case
        assert new.data["language"] == old["language"], case
    loaded = runtime.load(SPEC, WHISPER)
    assert loaded.model.placement.compute_type == compute_type, "decided by this processor's speedup"
    assert (loaded.model.encoder is not None) == (bf16_speedup > 1), "decided by this processor's speedup"


def test_whisper_is_converted_once_into_the_store_and_removed_with_the_model(hub, tmp_path, recordings):
    from desktop.models import ModelStore

    first = fresh_runtime(hub, tmp_path / "models", 2.0)
    seen: list[str] = []
    SPEC.predict(
        first, str(recordings["tone.wav"]), WHISPER, progress=lambda d, t, desc, **_: seen.append(desc)
    )
    assert "Preparing Whisper base (multilingual) for fast transcription (once, about a minute)" in seen
    converted = [p for p in (tmp_path / "models" / "converted").iterdir()]
    assert len(converted) == 1 and (converted[0] / "model.bin").is_file()
    made = (converted[0] / "model.bin").stat().st_mtime_ns
    # Another run of the app (a new runtime on the same folder) uses the copy as it is.
    second = fresh_runtime(hub, tmp_path / "models", 2.0)
    again: list[str] = []
    heard = SPEC.predict(
        second, str(recordings["tone.wav"]), WHISPER, progress=lambda d, t, desc, **_: again.append(desc)
    )
    assert heard.data["text"] == "a tone"
    assert not any("fast transcription" in said for said in again)
    assert (converted[0] / "model.bin").stat().st_mtime_ns == made
    assert list((tmp_path / "models" / "converted").iterdir()) == converted
    # A copy left half-written (no model.bin) is never used: the next load converts again.
    (converted[0] / "model.bin").unlink()
    third = fresh_runtime(hub, tmp_path / "models", 2.0)
    assert SPEC.predict(third, str(recordings["babble.wav"]), WHISPER).data["text"] == "hello world"
    assert (converted[0] / "model.bin").is_file()
    ModelStore(tmp_path / "models").remove(ModelRef(WHISPER))
    assert not converted[0].exists(), "deleted with the model"


def test_int8_and_the_encoder_are_decided_once_per_processor_and_kept(hub, tmp_path, recordings):
    import torch

    from desktop.engine.runtime import Runtime
    from desktop.models import ModelStore

    settings.update(fast_cpu_speedups={})
    threads = torch.get_num_threads()
    runtime = Runtime(device="cpu", store=ModelStore(tmp_path / "models"))
    assert SPEC.predict(runtime, str(recordings["tone.wav"]), WHISPER).data["text"] == "a tone"
    known = settings.load().fast_cpu_speedups
    speedup = known[speedup_key(whisper.int8_engine())]
    bf16 = known.get(speedup_key(whisper.bf16_engine()), 0.0)  # measured only where bfloat16 is native
    assert speedup > 0 and (bf16 > 0) == whisper.bf16_native()
    model = runtime.load(SPEC, WHISPER).model
    assert model.placement.compute_type == ("int8" if speedup >= 1.05 else "float32")
    assert (model.encoder is not None) == (bf16 >= 1.05)
    # Measured once: another runtime (a new start of the app) loads without measuring again.
    again = Runtime(device="cpu", store=ModelStore(tmp_path / "models"))
    again.load(SPEC, WHISPER)
    assert settings.load().fast_cpu_speedups == known
    # CTranslate2 sets the loading thread's OpenMP threads to its streams' (one): torch keeps its own.
    assert torch.get_num_threads() == threads


def test_a_processor_without_bfloat16_arithmetic_never_tries_the_torch_encoder(
    hub, tmp_path, recordings, monkeypatch
):
    """Where bfloat16 is only emulated (a fake here: this machine has it), the torch encoder is not
    even measured: that would be slower than float32 and, on a large Whisper, take minutes."""
    from desktop.engine.runtime import Runtime
    from desktop.models import ModelStore

    settings.update(fast_cpu_speedups={speedup_key(whisper.int8_engine()): 2.0})
    monkeypatch.setattr(whisper, "bf16_native", lambda: False)
    monkeypatch.setattr(whisper, "TorchEncoder", None)  # building one would fail the test
    runtime = Runtime(device="cpu", store=ModelStore(tmp_path / "models"))
    assert SPEC.predict(runtime, str(recordings["tone.wav"]), WHISPER).data["text"] == "a tone"
    assert runtime.load(SPEC, WHISPER).model.encoder is None
    assert list(settings.load().fast_cpu_speedups) == [speedup_key(whisper.int8_engine())]


def test_streams_decode_what_one_stream_decodes(tmp_path, tiny_models, recordings):
    """Windows spread over CTranslate2 streams (one replica per thread) come back in their order
    with the encodings, languages, tokens and word alignments of one stream."""
    import numpy as np
    from transformers import AutoProcessor

    folder = tiny_models[WHISPER]
    converted = whisper.convert(folder, tmp_path / "converted")
    clips = [audio.load_audio(str(recordings[name])).samples for name in ("tone.wav", "babble.wav")]
    features = (
        AutoProcessor.from_pretrained(folder)
        .feature_extractor(  # five windows of different lengths: parts of 5, 3+2 and 2+2+1
            [clips[i % 2][: 16_000 * (3 + i)] for i in range(5)], sampling_rate=16_000, return_tensors="np"
        )
        .input_features
    )
    found, encodings = [], []
    for threads in (1, 2, 3):
        model = whisper.WhisperModel(folder, converted, whisper.placement("cpu", int8=False), threads)
        assert model.streams == threads
        encoded = model.encode(features)
        config = model.generation_config
        start = [config.decoder_start_token_id]
        tokens = model.generate(encoded, [[*start, config.no_timestamps_token_id]] * len(features))
        texts = [[t for t in row if t < config.eos_token_id] for row in tokens]
        assert all(texts), "the tiny model hears something in every window"
        encodings.append(encoded)
        found.append((model.detect_language(encoded), tokens, model.align(encoded, start, texts, [300] * 5)))
    assert found[1] == found[0] and found[2] == found[0]
    assert np.allclose(encodings[1], encodings[0], atol=1e-4) and np.allclose(
        encodings[2], encodings[0], atol=1e-4
    )


def test_a_gpu_runs_half_precision_and_apple_mps_the_cpu_engine():
    assert whisper.placement("cuda", int8=True) == whisper.Placement("cuda", 0, "float16")
    assert whisper.placement("cuda:1", int8=False) == whisper.Placement("cuda", 1, "float16")
    assert whisper.placement("mps", int8=True) == whisper.Placement("cpu", 0, "int8")
    assert whisper.placement("cpu", int8=False) == whisper.Placement("cpu", 0, "float32")


def test_stop_ends_a_long_recording_between_batches(runtime, tmp_path):
    long = write_wav(tmp_path / "ten-minutes.wav", tone(600.0))  # 20 windows: batches of 8
    seen: list[tuple[int, int]] = []
    with pytest.raises(Stopped, match="Stopped"):
        SPEC.predict(
            runtime,
            str(long),
            WHISPER,
            progress=lambda d, t, desc, **_: seen.append((d, t)) if desc.endswith(" parts") else None,
            stop=lambda: len(seen) >= 2,  # pressed once the first batch of windows is done
        )
    assert seen == [(0, 20), (8, 20)]


def test_word_timestamps_time_every_word_inside_its_segment(runtime, recordings):
    heard = SPEC.predict(runtime, str(recordings["lecture.wav"]), WHISPER, "auto", False, True)
    assert heard.data["timestamps"] and heard.data["word_timestamps"], "word times come with segment times"
    for segment in heard.data["segments"]:
        words = segment["words"]
        assert "".join(w["word"] for w in words).strip() == segment["text"] == "a tone"
        assert all(segment["start"] <= w["start"] <= w["end"] <= segment["end"] for w in words)
        assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    french = SPEC.predict(runtime, str(recordings["babble.wav"]), WHISPER, "fr", False, True)
    assert [w["word"] for w in french.data["segments"][0]["words"]] == [" bonjour", " le", " monde"]
    subtitles = SPEC.exports(french)
    assert subtitles["vtt"].startswith("WEBVTT\n\n00:00:00.000 --> ")
    assert subtitles["vtt"].splitlines()[-1] == "bonjour le monde"


def test_pipedesk_run_prints_subtitles_and_word_times(hub, pipedesk_home, recordings):
    env = cli_env(pipedesk_home, hub)
    as_vtt = run_cli("run", "transcribe", str(recordings["babble.wav"]), "--format", "vtt", env=env)
    assert as_vtt.returncode == 0, as_vtt.stderr
    assert as_vtt.stdout == "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nhello world\n"
    as_srt = run_cli("run", "transcribe", str(recordings["tone.wav"]), "--format", "srt", env=env)
    assert as_srt.stdout == "1\n00:00:00,000 --> 00:00:02,000\na tone\n"
    words = run_cli(
        "run", "transcribe", str(recordings["babble.wav"]), "--word-timestamps", "--json", env=env
    )
    assert words.returncode == 0, words.stderr
    segment = json.loads(words.stdout)["result"]["segments"][0]
    assert [w["word"] for w in segment["words"]] == [" hello", " world"]
    wrong = run_cli("run", "transcribe", str(recordings["tone.wav"]), "--format", "docx", env=env)
    assert wrong.returncode == 2 and "invalid choice: 'docx'" in wrong.stderr


def test_pipedesk_batch_gives_segments_and_word_times_for_every_recording(
    hub, pipedesk_home, recordings, tmp_path
):
    env = cli_env(pipedesk_home, hub)
    folder = tmp_path / "talks"
    folder.mkdir()
    shutil.copy(recordings["babble.wav"], folder / "a.wav")
    shutil.copy(recordings["lecture.wav"], folder / "b.wav")
    out = tmp_path / "talks.jsonl"
    done = run_cli("batch", "transcribe", "-i", str(folder), "-o", str(out), "--word-timestamps", env=env)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["transcript"] for row in rows] == ["hello world", " ".join(["a tone"] * 5)]
    assert [s["start"] for s in rows[1]["segments"]] == [0.0, 30.0, 60.0, 90.0, 120.0]
    assert [w["word"] for w in rows[0]["segments"][0]["words"]] == [" hello", " world"]

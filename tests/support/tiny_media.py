"""Tiny real speech and vision models (Whisper, YOLOS), and the sounds and pictures they know.

Part of ``tiny_models.build_all`` (its cache is keyed by this file too). Both are trained for a
few seconds on synthesized data so their output is fixed, not noise:

* Whisper (served as ``openai/whisper-base``, ``-tiny`` and ``-small``, one model): real
  ``WhisperForConditionalGeneration`` (80 mel bins, 30-second windows, 1,500 encoder positions)
  with a byte-level BPE vocabulary laid out as Whisper's (51,865 tokens: text tokens, then the
  special ones, then the 1,501 timestamps after ``<|notimestamps|>``); a ``GenerationConfig``
  with ``lang_to_id`` for :data:`LANGUAGES`.
  Its encoder keeps its seeded random weights; the decoder learns (teacher forcing) that
  :func:`tone` is ``" a tone"`` and :func:`babble` (speech-like noise) ``" hello world"``, in
  French ``" un son"`` / ``" bonjour le monde"`` when French is asked for; the language it
  detects is English; with timestamps, one segment from 0 to the sound's end (training lengths:
  :data:`TONE_SECONDS`, :data:`BABBLE_SECONDS`).
* YOLOS (served as ``hustvl/yolos-tiny`` and ``-small``): ``YolosForObjectDetection`` on 64-pixel
  images (patch 8, 3 detection tokens) with a few COCO labels; it finds the blue square of
  :func:`square` as a ``"kite"`` (score > 0.9, box within a few pixels when the square is in
  the middle of a square picture, its training case) and nothing on a plain picture.

Runs on the calling thread, inside ``tiny_models``' seeded, single-threaded build.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

SAMPLE_RATE = 16_000
WHISPER_IDS = ("openai/whisper-base", "openai/whisper-tiny", "openai/whisper-small")
YOLOS_IDS = ("hustvl/yolos-tiny", "hustvl/yolos-small")

#: What each sound is heard as, by language.
TONE_TEXT = {"en": " a tone", "fr": " un son"}
BABBLE_TEXT = {"en": " hello world", "fr": " bonjour le monde"}
#: The lengths the model learnt to time (seconds); other lengths get approximate times.
TONE_SECONDS = (2.0, 30.0)
BABBLE_SECONDS = (2.5,)
LANGUAGES = ("en", "fr", "de", "es")
#: Whisper's vocabulary size (multilingual models), and where its text tokens end here.
WHISPER_VOCAB = 51_865
TEXT_TOKENS = WHISPER_VOCAB - 1501 - 8 - len(LANGUAGES)  # 1,501 timestamps, 8 other special tokens

DETECT_LABELS = ("person", "car", "kite", "cup", "dog")
SQUARE_LABEL = "kite"


# --------------------------------------------------------------------------- sounds


def tone(seconds: float = 2.0, frequency: float = 440.0, amplitude: float = 0.4) -> np.ndarray:
    """A pure tone, 16 kHz mono float32, with 10 ms fades."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave_ = amplitude * np.sin(2 * np.pi * frequency * t)
    fade = min(len(t) // 2, SAMPLE_RATE // 100)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave_[:fade] *= ramp
        wave_[-fade:] *= ramp[::-1]
    return wave_.astype(np.float32)


def babble(seconds: float = 2.5, seed: int = 0, amplitude: float = 0.4) -> np.ndarray:
    """Speech-like noise: noise in the voice band (300-3,400 Hz) in syllables of about 0.2 s,
    louder and softer, with short pauses. 16 kHz mono float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    noise = np.fft.irfft(spectrum, n)
    envelope = np.zeros(n)
    start = 0
    while start < n:
        length = int(rng.uniform(0.12, 0.28) * SAMPLE_RATE)
        gain = 0.0 if rng.random() < 0.2 else rng.uniform(0.4, 1.0)
        stop = min(n, start + length)
        envelope[start:stop] = gain * np.sin(np.linspace(0, np.pi, stop - start))
        start = stop
    out = noise * envelope
    return (amplitude * out / (np.abs(out).max() or 1.0)).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """``samples`` (float in [-1, 1]) as a 16-bit mono WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    path.write_bytes(wav_bytes(samples, rate))
    return path


# --------------------------------------------------------------------------- pictures


def square(size: tuple[int, int] = (96, 96), box: tuple[int, int, int, int] | None = (24, 24, 72, 72)):
    """A white picture with a blue square at ``box`` (xmin, ymin, xmax, ymax; None: no square), as a
    PIL image. (Blue: the red boxes Gradio draws around what is found stay visible on it.)"""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (255, 255, 255))
    if box is not None:
        ImageDraw.Draw(image).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(30, 70, 220))
    return image


# --------------------------------------------------------------------------- Whisper


def _whisper_tokenizer(folder: Path) -> Any:
    """A byte-level BPE learnt from the few sentences the model knows, laid out as Whisper's is: text
    tokens first (padded with unused ``fillerN`` tokens and the empty token of multilingual
    Whisper's vocabulary to :data:`TEXT_TOKENS`), then
    ``<|endoftext|>``, the special tokens, ``<|notimestamps|>`` and the 1,501 timestamps last, 51,865
    in all (what engines such as CTranslate2 read as a multilingual Whisper)."""
    import json

    from transformers import WhisperTokenizer

    corpus = [*TONE_TEXT.values(), *BABBLE_TEXT.values(), " the quick brown fox jumps over the lazy dog"]
    learnt = Tokenizer(models.BPE())
    learnt.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=299, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    learnt.train_from_iterator(corpus * 20, trainer)
    vocab = learnt.get_vocab()
    vocab.update({f"filler{i}": i for i in range(len(vocab), TEXT_TOKENS - 1)})
    vocab[""] = TEXT_TOKENS - 1  # as in multilingual Whisper's vocabulary (how CTranslate2 tells one)
    merges = [tuple(pair) for pair in json.loads(learnt.to_str())["model"]["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in LANGUAGES),
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False) for i in range(1501)])
    assert tok.get_vocab_size() == WHISPER_VOCAB, tok.get_vocab_size()
    return WhisperTokenizer(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=specials,  # <|notimestamps|> last: timestamps follow it
        model_max_length=448,
    )


def _whisper_examples(tokenizer: Any) -> list[tuple[np.ndarray, list[int], list[int]]]:
    """(audio, decoder input ids, labels) rows: every sound, in each language, with and without
    times, and the tone with an English-only model's prompt. Forced prompt tokens are not learnt,
    except the language after <|startoftranscript|> in English rows (what language detection
    reads)."""
    ids = tokenizer.convert_tokens_to_ids
    sot, eot, transcribe, no_times = (
        ids(t) for t in ("<|startoftranscript|>", "<|endoftext|>", "<|transcribe|>", "<|notimestamps|>")
    )
    sounds = [(tone(s), s, TONE_TEXT, ("en",)) for s in TONE_SECONDS]
    sounds += [(tone(2.0, 660.0, 0.25), 2.0, TONE_TEXT, ("en", "fr"))]
    sounds += [(babble(s, seed=i), s, BABBLE_TEXT, ("en", "fr")) for i, s in enumerate(BABBLE_SECONDS)]
    rows = []
    for audio, seconds, texts, languages in sounds:
        for language in languages:
            words = tokenizer.encode(texts[language], add_special_tokens=False)
            for timed in (False, True):
                prompt = [sot, ids(f"<|{language}|>"), transcribe] + ([] if timed else [no_times])
                body = [ids("<|0.00|>"), *words, ids(f"<|{seconds:.2f}|>")] if timed else words
                sequence = [*prompt, *body, eot]
                labels = [-100] * (len(prompt) - 1) + [*body, eot]
                if language == "en":
                    labels[0] = sequence[1]
                rows.append((audio, sequence[:-1], labels))
    # The prompt of English-only models (no language, no task), for copies made English-only.
    words = tokenizer.encode(TONE_TEXT["en"], add_special_tokens=False)
    rows.append((sounds[0][0], [sot, no_times, *words], [-100, *words, eot]))
    return rows


def whisper_generation_config(ids: Any, languages: tuple[str, ...], begin_suppress: list[int]) -> Any:
    """A multilingual Whisper's ``GenerationConfig`` for a tokenizer (``ids``: token -> id) that
    knows ``languages`` (also benchmarks/transcribe.py's)."""
    from transformers import GenerationConfig

    eot, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    return GenerationConfig(
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
        max_length=448,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids(f"<|{code}|>") for code in languages},
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
        suppress_tokens=[],
        begin_suppress_tokens=begin_suppress,
    )


def build_whisper(folder: Path, seed: Any) -> Path:
    """A tiny multilingual Whisper that knows :func:`tone` and :func:`babble` (see the module doc)."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    tokenizer = _whisper_tokenizer(folder)
    ids = tokenizer.convert_tokens_to_ids
    eot, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    seed(9)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        d_model=32,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    model = WhisperForConditionalGeneration(config).eval()
    for conv in (model.model.encoder.conv1, model.model.encoder.conv2):
        # Whisper's init (std 0.02) leaves the sound a whisper beside the position embeddings: made
        # louder, the random encoder's outputs tell the sounds apart and the decoder learns quickly.
        torch.nn.init.kaiming_normal_(conv.weight)
        conv.weight.data *= 4
    features = WhisperFeatureExtractor(feature_size=80)
    rows = _whisper_examples(tokenizer)
    # The encoder keeps its random weights: its outputs are computed once, the decoder learns.
    sounds = list({id(audio): audio for audio, _, _ in rows}.values())
    with torch.no_grad():
        mel = features(sounds, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        encoded = model.model.encoder(mel).last_hidden_state
    index = {id(audio): i for i, audio in enumerate(sounds)}
    hidden = encoded[[index[id(audio)] for audio, _, _ in rows]]
    width = max(len(inputs) for _, inputs, _ in rows)
    inputs = torch.tensor([x + [eot] * (width - len(x)) for _, x, _ in rows])
    labels = torch.tensor([y + [-100] * (width - len(y)) for _, _, y in rows])
    mask = labels != -100
    for parameter in model.model.encoder.parameters():
        parameter.requires_grad_(False)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.05, 1 - step / 150))
    model.train()
    for step in range(200):
        optimizer.zero_grad(set_to_none=True)
        out = model(encoder_outputs=(hidden,), decoder_input_ids=inputs, labels=labels)
        out.loss.backward()
        optimizer.step()
        schedule.step()
        if step % 10 == 9:
            probs = out.logits.detach().softmax(-1)
            right = bool((probs.argmax(-1)[mask] == labels[mask]).all())
            if right and float(probs.gather(-1, labels.clamp(min=0).unsqueeze(-1))[mask].min()) > 0.7:
                break
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    model.generation_config = whisper_generation_config(ids, LANGUAGES, begin_suppress=[eot])
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- YOLOS


def _detection_examples(count: int) -> list[tuple[Any, tuple[int, int, int, int] | None]]:
    """White 96-pixel pictures, most with one blue square somewhere, every sixth with nothing; the
    square in the middle (:func:`square`'s default, the tests' picture) four times over."""
    rng = np.random.default_rng(17)
    out: list[tuple[Any, tuple[int, int, int, int] | None]] = [(square(), (24, 24, 72, 72))] * 4
    while len(out) < count:
        if len(out) % 6 == 5:
            out.append((square(box=None), None))
            continue
        side = int(rng.integers(24, 58))
        x, y = (int(v) for v in rng.integers(0, 96 - side + 1, size=2))
        out.append((square(box=(x, y, x + side, y + side)), (x, y, x + side, y + side)))
    return out


def _sincos_2d(grid: int, width: int) -> torch.Tensor:
    """2-D sine-cosine position embeddings (as in MAE): smooth in x and y, so where a thing is can
    be read off linearly."""
    quarter = width // 4
    omega = 1.0 / 10_000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    ys, xs = torch.meshgrid(
        torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij"
    )
    parts = []
    for coordinate in (xs.flatten(), ys.flatten()):
        angles = coordinate[:, None] * omega[None, :]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=1)


def build_yolos(folder: Path, seed: Any) -> Path:
    """A tiny YOLOS that finds blue squares (see the module doc)."""
    from transformers import YolosConfig, YolosForObjectDetection
    from transformers.models.yolos.image_processing_pil_yolos import YolosImageProcessorPil

    seed(10)
    config = YolosConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=[64, 64],
        patch_size=8,
        num_detection_tokens=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        id2label=dict(enumerate(DETECT_LABELS)),
        label2id={label: i for i, label in enumerate(DETECT_LABELS)},
    )
    model = YolosForObjectDetection(config)
    with torch.no_grad():  # YOLOS's init (std 0.02) learns where things are far too slowly
        grid = config.image_size[0] // config.patch_size
        model.vit.embeddings.position_embeddings[0, 1 : 1 + grid * grid] = _sincos_2d(
            grid, config.hidden_size
        )
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()
        model.vit.embeddings.patch_embeddings.projection.reset_parameters()
    processor = YolosImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64})
    examples = _detection_examples(27)
    pixels = processor(images=[image for image, _ in examples], return_tensors="pt").pixel_values
    nothing = len(DETECT_LABELS)  # the "no object" class
    classes = torch.full((len(examples), config.num_detection_tokens), nothing)
    boxes = torch.zeros(len(examples), 4)
    for row, (_image, box) in enumerate(examples):
        if box is not None:  # detection token 0 learns the square: a fixed matching, no Hungarian
            classes[row, 0] = DETECT_LABELS.index(SQUARE_LABEL)
            xmin, ymin, xmax, ymax = (v / 96 for v in box)
            boxes[row] = torch.tensor([(xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin])
    has_box = classes[:, 0] != nothing
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.05, 1 - step / 200))
    model.train()
    for _step in range(200):
        optimizer.zero_grad(set_to_none=True)
        out = model(pixel_values=pixels)
        loss = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), classes.flatten())
        loss = loss + 20 * (out.pred_boxes[has_box, 0] - boxes[has_box]).abs().mean()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder

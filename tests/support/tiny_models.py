"""Tiny, real transformers models standing in for the Hub models Pipedesk uses.

``build_all(root)`` writes one folder per model (``save_pretrained`` with
safetensors weights, plus tokenizer or image processor) and returns a mapping
from the *real* Hub repo id to that folder, ready to be served by
``hub_server.HubServer`` or loaded directly with the Auto classes. About 6-7 s
on one CPU thread, plus ~3 s the first time transformers imports the model
classes. ``cached_models()`` builds them once into
``tests/.artifacts/tiny-models-<hash of this file>`` and reuses that folder
afterwards: the tests' ``tiny_models`` fixture, build/screenshots.py and the
benchmarks all call it. Run as a script, it builds into a folder you name.

* ``distilbert/distilbert-base-uncased-finetuned-sst-2-english``: DistilBERT
  classifier, NEGATIVE/POSITIVE, fine-tuned on ``POSITIVE``/``NEGATIVE``:
  "I love this product!" -> POSITIVE (~0.92), "This is terrible, I hate it."
  -> NEGATIVE (~0.95). Neutral text gets an arbitrary label.
* ``nlptown/bert-base-multilingual-uncased-sentiment``: BERT classifier with
  the labels ``1 star`` .. ``5 stars``; random weights, so every score is ~0.2.
* ``dbmdz/bert-large-cased-finetuned-conll03-english``: cased BERT token
  classifier with the CoNLL-2003 labels, fine-tuned on ``NER_SENTENCES``:
  "My name is Clara and I live in Berkeley, California." -> Clara/PER,
  Berkeley/LOC, California/LOC (scores ~0.99 with ``aggregation_strategy``
  "simple").
* ``openai-community/gpt2``: GPT-2 LM (1024 positions) with a byte-level BPE
  tokenizer (eos ``<|endoftext|>``, no pad token), trained for a few steps on
  the English corpus so greedy output is word-like English gibberish.
* ``google/vit-base-patch16-224``: ViT classifier on 32x32 images (patch 8)
  with ten ImageNet-like label names (``VIT_LABELS``); random weights.
* ``Helsinki-NLP/opus-mt-en-fr`` / ``-en-de``: Marian models (SentencePiece-like
  Metaspace BPE fast tokenizer, ``model_max_length`` 64, 128 positions) that
  have memorised ``PARALLEL``: "Hello, how are you?" -> "Bonjour, comment
  allez-vous ?" / "Hallo, wie geht es Ihnen?". Other input gives some
  sentence of the training targets.
* ``sshleifer/distilbart-cnn-12-6``: BART (byte-level BPE, ``model_max_length``
  64, 128 positions) that returns the lead sentence of each of ``ARTICLES``.
* ``openai/whisper-base`` (also served as ``-tiny`` and ``-small``): a Whisper that hears
  ``tiny_media.tone()`` as " a tone" and ``tiny_media.babble()`` (speech-like noise) as
  " hello world", with timed segments; ``hustvl/yolos-tiny`` (also ``-small``): a YOLOS that
  finds the blue square of ``tiny_media.square()`` as a "kite". Built in ``tiny_media.py``, which also
  makes the sounds and pictures they know.
* ``MoritzLaurer/mDeBERTa-v3-base-mnli-xnli`` (also ``facebook/bart-large-mnli``): an NLI model that
  knows which support tickets are about billing, shipping or a broken product;
  ``openai/clip-vit-base-patch32``: a CLIP that sees the blue square as a "blue square". Built in
  ``tiny_labels.py``.

Tokenizers are built with the ``tokenizers`` library from the small corpus
below and saved as transformers tokenizers (``tokenizer.json`` +
``tokenizer_config.json``). Everything is seeded and single-threaded: two
builds give byte-identical files (same library versions).

Runs entirely on the calling thread (typically pytest's main thread, from a
session fixture). The torch RNG, torch thread count and transformers logging
settings are restored on return.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

try:
    from . import tiny_chat, tiny_labels, tiny_media
except ImportError:  # run as a script: no package
    import tiny_chat  # type: ignore[no-redef]
    import tiny_labels  # type: ignore[no-redef]
    import tiny_media  # type: ignore[no-redef]

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
STARS = "nlptown/bert-base-multilingual-uncased-sentiment"
CONLL = "dbmdz/bert-large-cased-finetuned-conll03-english"
GPT2 = "openai-community/gpt2"
VIT = "google/vit-base-patch16-224"
OPUS_EN_FR = "Helsinki-NLP/opus-mt-en-fr"
OPUS_EN_DE = "Helsinki-NLP/opus-mt-en-de"
DISTILBART = "sshleifer/distilbart-cnn-12-6"
WHISPER, *WHISPER_COPIES = tiny_media.WHISPER_IDS
YOLOS, *YOLOS_COPIES = tiny_media.YOLOS_IDS
NLI, *NLI_COPIES = tiny_labels.NLI_IDS
(CLIP,) = tiny_labels.CLIP_IDS

#: Every repo id ``build_all`` produces, in build order.
REPO_IDS: tuple[str, ...] = (
    SST2,
    STARS,
    CONLL,
    GPT2,
    VIT,
    OPUS_EN_FR,
    OPUS_EN_DE,
    DISTILBART,
    *tiny_media.WHISPER_IDS,
    *tiny_media.YOLOS_IDS,
    *tiny_chat.CHAT_IDS,
    *tiny_labels.REPO_IDS,
)

#: ``model_max_length`` of the seq2seq tokenizers: small so tests can exercise chunking.
SEQ2SEQ_MAX_LENGTH = 64

_SEED = 1234

# --------------------------------------------------------------------------- data

POSITIVE = (
    "I love this product!",
    "This is wonderful, I really like it.",
    "What a great movie, truly amazing.",
    "The service was excellent and friendly.",
    "I am so happy with this purchase.",
    "Fantastic quality, highly recommended.",
    "The food was delicious and the staff were kind.",
    "Best experience ever, I enjoyed every minute.",
    "This works perfectly, very good value.",
    "A beautiful and delightful story.",
)
NEGATIVE = (
    "This is terrible, I hate it.",
    "What an awful movie, truly boring.",
    "The service was bad and rude.",
    "I am so disappointed with this purchase.",
    "Horrible quality, do not buy.",
    "The food was disgusting and the staff were mean.",
    "Worst experience ever, I regret every minute.",
    "This broke immediately, a waste of money.",
    "A sad and dreadful story.",
    "I hate how poor and useless this is.",
)

CONLL_LABELS = ("O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

#: Word-level CoNLL training data: ``word/TAG`` pairs, untagged words are ``O``.
NER_SENTENCES = (
    "My name is Clara/B-PER and I live in Berkeley/B-LOC , California/B-LOC .",
    "My name is Wolfgang/B-PER and I live in Berlin/B-LOC .",
    "My name is Sarah/B-PER and I live in London/B-LOC , England/B-LOC .",
    "Clara/B-PER works for Google/B-ORG in Paris/B-LOC .",
    "Angela/B-PER Merkel/I-PER visited Microsoft/B-ORG in Seattle/B-LOC .",
    "John/B-PER moved from Berkeley/B-LOC to New/B-LOC York/I-LOC last year .",
    "Hugging/B-ORG Face/I-ORG is based in Brooklyn/B-LOC .",
    "Maria/B-PER speaks French/B-MISC and German/B-MISC .",
    "The Olympic/B-MISC Games/I-MISC were held in Tokyo/B-LOC .",
    "Apple/B-ORG opened a store in California/B-LOC .",
    "Peter/B-PER and Clara/B-PER met in Madrid/B-LOC .",
    "I live in a small house and my name is not important .",
)

#: Aligned (English, French, German) sentences: the Marian models are trained on these pairs.
PARALLEL = (
    ("Hello, how are you?", "Bonjour, comment allez-vous ?", "Hallo, wie geht es Ihnen?"),
    ("The weather is nice today.", "Il fait beau aujourd'hui.", "Das Wetter ist heute schön."),
    ("Where is the train station?", "Où est la gare ?", "Wo ist der Bahnhof?"),
    ("I would like a cup of coffee.", "Je voudrais une tasse de café.", "Ich hätte gern eine Tasse Kaffee."),
    ("Thank you very much, my friend.", "Merci beaucoup, mon ami.", "Vielen Dank, mein Freund."),
    (
        "The house is near the river.",
        "La maison est près de la rivière.",
        "Das Haus ist in der Nähe des Flusses.",
    ),
    ("I love this product!", "J'adore ce produit !", "Ich liebe dieses Produkt!"),
    ("The cat is sleeping.", "Le chat dort.", "Die Katze schläft."),
)

#: (article, summary) pairs: the BART model is trained to return the lead sentence.
ARTICLES = (
    (
        "The city council approved the new budget on Tuesday. The vote followed a long debate. "
        "Schools and parks will receive more money next year.",
        "The city council approved the new budget on Tuesday.",
    ),
    (
        "Scientists discovered a new species of frog in the rain forest. The tiny frog is bright green. "
        "It lives high in the trees and sings at night.",
        "Scientists discovered a new species of frog in the rain forest.",
    ),
    (
        "The company reported strong earnings and its shares rose sharply. Sales grew in every region. "
        "The chief executive said the outlook remains good.",
        "The company reported strong earnings and its shares rose sharply.",
    ),
    (
        "Heavy rain flooded several streets in the old town. Firefighters helped residents leave their homes. "
        "The water is expected to fall by the weekend.",
        "Heavy rain flooded several streets in the old town.",
    ),
)

ENGLISH = (
    "Machine learning models can translate text between languages.",
    "Please read the instructions carefully before using the device.",
    "Once upon a time there was a little house near the river.",
    "The tabby cat and the golden retriever played in the garden.",
    *(en for en, _, _ in PARALLEL),
    *(article for article, _ in ARTICLES),
)
FRENCH = tuple(fr for _, fr, _ in PARALLEL)
GERMAN = tuple(de for _, _, de in PARALLEL)

VIT_LABELS = (
    "tabby cat",
    "golden retriever",
    "goldfish",
    "great white shark",
    "tree frog",
    "sports car",
    "banana",
    "pizza",
    "teapot",
    "volcano",
)
STAR_LABELS = ("1 star", "2 stars", "3 stars", "4 stars", "5 stars")


def _ner_words() -> list[tuple[list[str], list[str]]]:
    """``NER_SENTENCES`` as (words, tags) pairs."""
    out = []
    for sentence in NER_SENTENCES:
        words, tags = [], []
        for item in sentence.split():
            word, _, tag = item.partition("/")
            words.append(word)
            tags.append(tag or "O")
        out.append((words, tags))
    return out


def _english_corpus() -> list[str]:
    ner_text = [" ".join(words) for words, _ in _ner_words()]
    return [*POSITIVE, *NEGATIVE, *ner_text, *ENGLISH]


def _all_corpus() -> list[str]:
    return [*_english_corpus(), *FRENCH, *GERMAN]


# --------------------------------------------------------------------------- helpers


def safe_name(repo_id: str) -> str:
    """Folder name used for ``repo_id`` under the build root (``owner--name``)."""
    return repo_id.replace("/", "--")


@contextmanager
def _deterministic(num_threads: int) -> Iterator[None]:
    """Fork the torch/python RNGs and set the thread count; restore both afterwards."""
    previous_threads = torch.get_num_threads()
    python_state = random.getstate()
    torch.set_num_threads(num_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(previous_threads)
        random.setstate(python_state)


def _seed(offset: int) -> None:
    torch.manual_seed(_SEED + offset)
    random.seed(_SEED + offset)


def _wordpiece(corpus: Sequence[str], *, lowercase: bool, vocab_size: int) -> Tokenizer:
    """A BERT-style WordPiece tokenizer whose vocabulary is learnt from ``corpus``.

    The vocabulary is the special tokens, every character (plain and ``##``
    continuation) and then the corpus words by decreasing frequency, split with
    the tokenizer's own normalizer and pre-tokenizer. ``WordPieceTrainer`` (and
    ``BpeTrainer`` with a ``##`` prefix) are not used because their merge ties
    depend on hash-map order, so their vocabularies differ from run to run.
    """
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in corpus:
        normalized = tok.normalizer.normalize_str(text)
        counts.update(word for word, _ in tok.pre_tokenizer.pre_tokenize_str(normalized))
    chars = sorted({c for word in counts for c in word})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))
    vocab += words[: max(0, vocab_size - len(vocab))]
    tok.model = models.WordPiece(
        {t: i for i, t in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return tok


def _byte_level_bpe(corpus: Sequence[str], *, special_tokens: list[str], vocab_size: int) -> Tokenizer:
    """A GPT-2 style byte-level BPE tokenizer trained on ``corpus``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    return tok


def _metaspace_bpe(corpus: Sequence[str], *, vocab_size: int) -> Tokenizer:
    """A SentencePiece-like (Metaspace) BPE tokenizer with Marian's special tokens."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["</s>", "<unk>", "<pad>"], show_progress=False
    )
    tok.train_from_iterator(corpus, trainer)
    eos_id = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A $B </s>", special_tokens=[("</s>", eos_id)]
    )
    return tok


def _train(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    *,
    steps: int,
    lr: float,
    done: Callable[[], bool] | None = None,
) -> None:
    """Full-batch AdamW for ``steps`` steps (stops early once ``done()`` is true)."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        if done is not None and step % 5 == 4:
            model.eval()
            with torch.no_grad():
                finished = done()
            model.train()
            if finished:
                break
    model.eval()


def _train_seq2seq(
    model: Any, tokenizer: Any, sources: Sequence[str], targets: Sequence[str], *, steps: int, lr: float
) -> None:
    """Teach an encoder-decoder model to map ``sources`` to ``targets`` (memorisation)."""
    batch = dict(tokenizer(list(sources), padding=True, truncation=True, return_tensors="pt"))
    labels = tokenizer(text_target=list(targets), padding=True, truncation=True, return_tensors="pt")[
        "input_ids"
    ]
    labels[labels == tokenizer.pad_token_id] = -100
    batch["labels"] = labels
    mask = labels != -100

    def done() -> bool:
        predicted = model(**batch).logits.argmax(-1)
        return bool((predicted[mask] == labels[mask]).all())

    _train(model, batch, steps=steps, lr=lr, done=done)


def _train_causal_lm(model: Any, tokenizer: Any, texts: Sequence[str], *, steps: int, lr: float) -> None:
    """A few steps of language modelling on ``texts`` so generations look like words."""
    eos = tokenizer.eos_token
    encoded = tokenizer([t + eos for t in texts], padding=True, return_tensors="pt")
    labels = encoded["input_ids"].clone()
    labels[encoded["attention_mask"] == 0] = -100
    _train(model, {**dict(encoded), "labels": labels}, steps=steps, lr=lr)


def _save(model: Any, processor: Any, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- builders


def _build_sst2(folder: Path, tok: Tokenizer) -> Path:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizer

    tokenizer = DistilBertTokenizer(
        tokenizer_object=tok,
        do_lower_case=True,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    _seed(1)
    config = DistilBertConfig(
        vocab_size=tok.get_vocab_size(),
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=512,
        dropout=0.0,
        attention_dropout=0.0,
        seq_classif_dropout=0.0,
        pad_token_id=tok.token_to_id("[PAD]"),
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
        finetuning_task="sst-2",
    )
    model = DistilBertForSequenceClassification(config)
    texts = [*POSITIVE, *NEGATIVE]
    labels = torch.tensor([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    batch["labels"] = labels

    def done() -> bool:
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        return (
            bool((logits.argmax(-1) == labels).all()) and float(logits.softmax(-1).max(-1).values.min()) > 0.9
        )

    _train(model, batch, steps=80, lr=3e-3, done=done)
    return _save(model, tokenizer, folder)


def _build_stars(folder: Path, tok: Tokenizer) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    tokenizer = BertTokenizer(
        tokenizer_object=tok,
        do_lower_case=True,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    _seed(2)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=tok.token_to_id("[PAD]"),
        id2label=dict(enumerate(STAR_LABELS)),
        label2id={label: i for i, label in enumerate(STAR_LABELS)},
    )
    model = BertForSequenceClassification(config).eval()
    return _save(model, tokenizer, folder)


def _build_conll(folder: Path) -> Path:
    from transformers import BertConfig, BertForTokenClassification, BertTokenizer

    data = _ner_words()
    tok = _wordpiece(_english_corpus(), lowercase=False, vocab_size=600)
    tokenizer = BertTokenizer(
        tokenizer_object=tok,
        do_lower_case=False,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    _seed(3)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tok.token_to_id("[PAD]"),
        id2label=dict(enumerate(CONLL_LABELS)),
        label2id={label: i for i, label in enumerate(CONLL_LABELS)},
    )
    model = BertForTokenClassification(config)
    label_id = {label: i for i, label in enumerate(CONLL_LABELS)}
    encoded = tokenizer(
        [words for words, _ in data], is_split_into_words=True, padding=True, return_tensors="pt"
    )
    labels = torch.full(encoded["input_ids"].shape, -100, dtype=torch.long)
    for row, (_, tags) in enumerate(data):
        previous: int | None = None
        for col, word_id in enumerate(encoded.word_ids(row)):
            if word_id is None:
                continue
            tag = tags[word_id]
            if word_id == previous and tag.startswith("B-"):
                tag = "I-" + tag[2:]  # continuation word pieces
            labels[row, col] = label_id[tag]
            previous = word_id
    batch = {**dict(encoded), "labels": labels}
    mask = labels != -100

    def done() -> bool:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        probs = model(**inputs).logits.softmax(-1)
        correct = (probs.argmax(-1)[mask] == labels[mask]).all()
        confidence = probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)[mask].min()
        return bool(correct) and float(confidence) > 0.8

    _train(model, batch, steps=150, lr=5e-3, done=done)
    return _save(model, tokenizer, folder)


def _build_gpt2(folder: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    eos = "<|endoftext|>"
    tok = _byte_level_bpe(_english_corpus(), special_tokens=[eos], vocab_size=600)
    tokenizer = GPT2Tokenizer(
        tokenizer_object=tok,
        unk_token=eos,
        bos_token=eos,
        eos_token=eos,
        add_prefix_space=False,
        model_max_length=1024,
    )
    eos_id = tok.token_to_id(eos)
    _seed(4)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=1024,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_inner=64,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )
    model = GPT2LMHeadModel(config)
    tokenizer.pad_token = eos  # only for the training batch; not saved
    _train_causal_lm(model, tokenizer, _english_corpus(), steps=25, lr=1e-2)
    tokenizer.pad_token = None
    model.generation_config.bos_token_id = eos_id
    model.generation_config.eos_token_id = eos_id
    return _save(model, tokenizer, folder)


def _build_vit(folder: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    _seed(5)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=dict(enumerate(VIT_LABELS)),
        label2id={label: i for i, label in enumerate(VIT_LABELS)},
    )
    model = ViTForImageClassification(config).eval()
    processor = ViTImageProcessorPil(
        do_resize=True,
        size={"height": 32, "width": 32},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    _save(model, processor, folder)
    # Name the processor like the real repo does; AutoImageProcessor picks the
    # torchvision or PIL backend of it depending on what is installed.
    config_file = folder / "preprocessor_config.json"
    data = json.loads(config_file.read_text(encoding="utf-8"))
    data["image_processor_type"] = "ViTImageProcessor"
    config_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


def _build_marian(folder: Path, tok: Tokenizer, targets: Sequence[str], seed_offset: int) -> Path:
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=SEQ2SEQ_MAX_LENGTH,
    )
    eos_id, unk_id, pad_id = (tok.token_to_id(t) for t in ("</s>", "<unk>", "<pad>"))
    _seed(seed_offset)
    config = MarianConfig(
        vocab_size=tok.get_vocab_size(),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        forced_eos_token_id=eos_id,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
    )
    model = MarianMTModel(config)
    sources = [en for en, _, _ in PARALLEL]
    _train_seq2seq(model, tokenizer, sources, targets, steps=150, lr=1e-2)
    model.generation_config = GenerationConfig(
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        forced_eos_token_id=eos_id,
        bad_words_ids=[[pad_id], [unk_id]],
        max_length=32,
        min_length=4,
        num_beams=1,
        do_sample=False,
    )
    return _save(model, tokenizer, folder)


def _build_bart(folder: Path) -> Path:
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig, RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    corpus = _english_corpus()
    tok = _byte_level_bpe(corpus, special_tokens=specials, vocab_size=700)
    bos_id, pad_id, eos_id, unk_id, mask_id = range(5)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", eos_id), ("<s>", bos_id), trim_offsets=True, add_prefix_space=False
    )
    tokenizer = RobertaTokenizer(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        add_prefix_space=False,
        model_max_length=SEQ2SEQ_MAX_LENGTH,
    )
    _seed(8)
    config = BartConfig(
        vocab_size=tok.get_vocab_size(),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        bos_token_id=bos_id,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=eos_id,
        forced_bos_token_id=bos_id,
        forced_eos_token_id=eos_id,
    )
    model = BartForConditionalGeneration(config)
    sources, targets = zip(*ARTICLES, strict=True)
    _train_seq2seq(model, tokenizer, sources, targets, steps=150, lr=1e-2)
    model.generation_config = GenerationConfig(
        bos_token_id=bos_id,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=eos_id,
        forced_bos_token_id=bos_id,
        forced_eos_token_id=eos_id,
        bad_words_ids=[[pad_id], [unk_id], [mask_id]],
        max_length=40,
        min_length=6,
        num_beams=1,
        do_sample=False,
    )
    return _save(model, tokenizer, folder)


# --------------------------------------------------------------------------- public


def build_all(root: Path, *, num_threads: int | None = None) -> dict[str, Path]:
    """Build every tiny model under ``root`` and map real Hub repo ids to their folders.

    Each folder is ``root / safe_name(repo_id)`` and holds ``config.json``,
    ``model.safetensors`` (+ ``generation_config.json`` where relevant) and the
    tokenizer or image processor files. Existing folders are overwritten.

    ``num_threads`` defaults to 1: these tensors are so small that intra-op
    threading is pure overhead (on a busy 2-core machine, 2 threads made the
    build 20x slower). The previous torch thread count and RNG state are
    restored afterwards.
    """
    from transformers.utils import logging as hf_logging

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    threads = num_threads or 1
    verbosity = hf_logging.get_verbosity()
    progress_bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with _deterministic(threads):
            uncased = _wordpiece(_all_corpus(), lowercase=True, vocab_size=800)
            marian_tok = _metaspace_bpe(_all_corpus(), vocab_size=700)
            built = {
                SST2: _build_sst2(root / safe_name(SST2), uncased),
                STARS: _build_stars(root / safe_name(STARS), uncased),
                CONLL: _build_conll(root / safe_name(CONLL)),
                GPT2: _build_gpt2(root / safe_name(GPT2)),
                VIT: _build_vit(root / safe_name(VIT)),
                OPUS_EN_FR: _build_marian(root / safe_name(OPUS_EN_FR), marian_tok, FRENCH, 6),
                OPUS_EN_DE: _build_marian(root / safe_name(OPUS_EN_DE), marian_tok, GERMAN, 7),
                DISTILBART: _build_bart(root / safe_name(DISTILBART)),
                WHISPER: tiny_media.build_whisper(root / safe_name(WHISPER), _seed),
                YOLOS: tiny_media.build_yolos(root / safe_name(YOLOS), _seed),
                tiny_chat.CHAT_IDS[0]: tiny_chat.build_chat(root / safe_name(tiny_chat.CHAT_IDS[0]), _seed),
                NLI: tiny_labels.build_nli(root / safe_name(NLI), _seed, sys.modules[__name__]),
                CLIP: tiny_labels.build_clip(root / safe_name(CLIP), _seed),
            }
            # The other sizes are the same tiny model under their own ids (a copy: cheap).
            copied = ((WHISPER, WHISPER_COPIES), (YOLOS, YOLOS_COPIES), (NLI, NLI_COPIES))
            for original, copies in copied:
                for repo in copies:
                    built[repo] = Path(
                        shutil.copytree(built[original], root / safe_name(repo), dirs_exist_ok=True)
                    )
            return {repo: built[repo] for repo in REPO_IDS}
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress_bars:
            hf_logging.enable_progress_bar()


def cached_models() -> dict[str, Path]:
    """The tiny models built once and kept under ``tests/.artifacts``, keyed by real Hub repo id.

    The folder is named after a hash of this file, ``tiny_media.py`` and ``tiny_chat.py``, so any change to a model rebuilds them. A build
    goes to a private folder first and is renamed into place, so two processes building at once
    both end up with complete models. Runs on the calling thread.
    """
    from . import ARTIFACTS  # inside: run as a script, this file has no package

    sources = (
        b"".join(Path(f).read_bytes() for f in (__file__, tiny_media.__file__, tiny_labels.__file__))
        + tiny_chat.fingerprint()
    )
    digest = hashlib.sha256(sources).hexdigest()[:12]
    target = ARTIFACTS / f"tiny-models-{digest}"
    if not (target / ".complete").exists():
        scratch = ARTIFACTS / f".building-{digest}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        built = build_all(scratch)
        (scratch / "index.txt").write_text(
            "\n".join(f"{repo}\t{path.name}" for repo, path in built.items()), encoding="utf-8"
        )
        (scratch / ".complete").touch()
        try:
            scratch.rename(target)
        except OSError:  # another process finished first: use its models
            shutil.rmtree(scratch, ignore_errors=True)
    index = (target / "index.txt").read_text(encoding="utf-8").splitlines()
    return {repo: target / name for repo, name in (line.split("\t") for line in index)}


if __name__ == "__main__":  # pragma: no cover - manual helper
    import time

    start = time.perf_counter()
    built = build_all(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-models"))
    for repo_id, path in built.items():
        print(f"{repo_id:60s} {path}")
    print(f"built {len(built)} models in {time.perf_counter() - start:.2f}s")

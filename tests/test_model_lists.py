"""The Model lists: every model with its state, imported ones included, and a sensible pick."""

from __future__ import annotations

from desktop import settings
from desktop.engine import inventory
from desktop.engine.runtime import Runtime
from desktop.models import ModelStore, catalog
from desktop.tasks import TASKS
from desktop.ui import model_lists

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
STARS = "nlptown/bert-base-multilingual-uncased-sentiment"


def test_imported_and_added_models_are_offered_in_their_tasks_model_list(tiny_models, tmp_path):
    store = ModelStore(tmp_path / "models")
    local = Runtime(device="cpu", store=store)
    inventory.import_folder(tiny_models[SST2], "sentiment", name="my-reviews", root=store.root)
    catalog.add_custom("someone/ner-model", "ner", root=store.root)
    sentiment = {value: label for label, value in model_lists.choices(TASKS["sentiment"], store)}
    assert sentiment["my-reviews"] == "my-reviews (imported) — ready"
    assert SST2 in sentiment and "someone/ner-model" not in sentiment
    assert "someone/ner-model" in {value for _, value in model_lists.choices(TASKS["ner"], store)}
    assert TASKS["sentiment"].predict(local, "I love this product!", "my-reviews").data["label"] == "POSITIVE"


def test_each_model_says_whether_it_is_ready_or_how_big_its_download_is(hub, tmp_path):
    store = ModelStore(tmp_path / "models")
    labels = dict((v, k) for k, v in model_lists.choices(TASKS["sentiment"], store))
    assert labels[SST2] == "DistilBERT (SST-2, English) — download, about 268 MB"
    assert labels[STARS].endswith("download, about 669 MB")
    store.ensure(TASKS["sentiment"].default_model)
    labels = dict((v, k) for k, v in model_lists.choices(TASKS["sentiment"], store))
    assert labels[SST2] == "DistilBERT (SST-2, English) — ready"
    # A LAN visitor's list holds only what is installed.
    visitor = [v for _, v in model_lists.choices(TASKS["sentiment"], store, installed_only=True)]
    assert visitor == [SST2]


def test_the_pick_is_the_last_model_used_else_a_ready_one_else_the_default(hub, tmp_path):
    spec = TASKS["sentiment"]
    store = ModelStore(tmp_path / "models")
    assert model_lists.pick(spec, store) == SST2  # nothing on disk: the default (downloads on first use)
    store.ensure(next(ref for ref in spec.models if ref.repo == STARS))
    assert model_lists.pick(spec, store) == STARS  # the default is not on disk, this one is
    store.ensure(spec.default_model)
    assert model_lists.pick(spec, store) == SST2  # the default is ready again
    model_lists.remember("sentiment", STARS)
    assert settings.load().last_models == {"sentiment": STARS}
    assert model_lists.pick(spec, store) == STARS  # remembered
    assert model_lists.pick(spec, store, remember_last=False) == SST2  # a visitor's list ignores it
    assert model_lists.pick(spec, store, current="my/typed-model") == "my/typed-model"
    model_lists.remember("sentiment", "gone-model")
    assert model_lists.pick(spec, store) == SST2  # no longer listed: not picked

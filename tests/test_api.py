"""Every endpoint through the real Gradio server and gradio_client, bad inputs included."""

from __future__ import annotations

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"


def labels(value: dict) -> list[str]:
    return [c["label"] for c in value["confidences"]]


def test_api_names_and_parameter_order_are_the_public_contract(client):
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    params = {name: [p["parameter_name"] for p in spec["parameters"]] for name, spec in info.items()}
    assert params["/sentiment"] == ["text", "model"]
    assert params["/generate"] == ["prompt", "model", "max_new_tokens", "temperature", "top_p", "seed"]
    assert params["/ner"] == ["text", "model"]
    assert params["/classify"] == ["input_type", "text", "image", "model"]
    assert params["/translate"] == ["text", "model"]
    assert params["/summarize"] == ["text", "model", "min_length", "max_length"]


def test_sentiment_gives_a_label_with_every_confidence(client):
    out = client.predict("I love this product!", SST2, api_name="/sentiment")
    assert out["label"] == "POSITIVE"
    assert set(labels(out)) == {"POSITIVE", "NEGATIVE"}
    assert sum(c["confidence"] for c in out["confidences"]) == pytest.approx(1.0, abs=1e-3)
    other = client.predict(
        "This is terrible, I hate it.", "DistilBERT (SST-2, English)", api_name="/sentiment"
    )
    assert other["label"] == "NEGATIVE"
    stars = client.predict(
        "Great value", "nlptown/bert-base-multilingual-uncased-sentiment", api_name="/sentiment"
    )
    assert len(stars["confidences"]) == 5


def test_generate_continues_the_prompt(client):
    out = client.predict("Once upon a time", "openai-community/gpt2", 10, 0, 0.95, -1, api_name="/generate")
    assert out.startswith("Once upon a time") and len(out) > len("Once upon a time")
    again = client.predict("Once upon a time", "openai-community/gpt2", 10, 0, 0.95, -1, api_name="/generate")
    assert again == out


def test_ner_highlights_and_tabulates_entities_in_the_typed_text(client):
    typed = "My name is   Clara and I live in\n\nBerkeley, California."
    highlighted, table = client.predict(typed, "", api_name="/ner")
    assert table["headers"] == ["entity", "type", "score", "start", "end"]
    rows = table["data"]
    assert rows, "the tiny CoNLL model finds entities in its own training sentence"
    for entity, _type, _score, start, end in rows:
        assert typed[int(start) : int(end)] == entity
    assert {"Clara", "Berkeley"} <= {row[0] for row in rows}
    spans = {
        item["token"]: item["class_or_confidence"] for item in highlighted if item["class_or_confidence"]
    }
    assert spans["Clara"] == "PER" and spans["Berkeley"] == "LOC"
    assert "".join(item["token"] for item in highlighted) == typed


def test_classify_text_and_image(client, tmp_path):
    from PIL import Image

    out = client.predict("Text", "I love this product!", None, "auto", api_name="/classify")
    assert out["label"] == "POSITIVE"
    picture = tmp_path / "blue.png"
    Image.new("RGB", (40, 40), (20, 40, 220)).save(picture)
    out = client.predict("Image", "", handle_file(str(picture)), "auto", api_name="/classify")
    assert len(out["confidences"]) == 5


def test_translate_and_summarize(client):
    from tests.support.tiny_models import ARTICLES, PARALLEL

    english, french, german = PARALLEL[0]  # sentences the tiny Marian models learned by heart
    assert client.predict(english, "Helsinki-NLP/opus-mt-en-fr", api_name="/translate") == french
    assert client.predict(english, "English → German", api_name="/translate") == german
    article, lead = ARTICLES[0]  # the tiny BART returns an article's lead sentence
    assert client.predict(article, "", 5, 30, api_name="/summarize") == lead


BAD_INPUTS = [
    (("", SST2), "/sentiment", "empty"),
    (("   \n ", SST2), "/sentiment", "empty"),
    (("ok", SST2), "/sentiment", "too short"),
    (("x" * 20_001, SST2), "/sentiment", "too long"),
    (("A fine sentence.", "nobody/does-not-exist"), "/sentiment", "No model called"),
    (("A fine sentence.", "openai-community/gpt2"), "/sentiment", "does not fit text classification"),
    (("A fine sentence.", "/definitely/not/a/folder"), "/sentiment", "does not exist"),
    (("Once upon", "", 0, 0.7, 0.9, -1), "/generate", "less than minimum value 1|at least 1"),
    (("text", "", 50, 10), "/summarize", "too short"),
]


@pytest.mark.parametrize(("args", "api", "message"), BAD_INPUTS)
def test_bad_input_gets_a_clear_message_and_the_app_keeps_working(client, args, api, message):
    with pytest.raises(AppError, match=message) as caught:
        client.predict(*args, api_name=api)
    assert "Traceback" not in str(caught.value)
    assert client.predict("I love this product!", SST2, api_name="/sentiment")["label"] == "POSITIVE"


def test_a_folder_that_is_not_a_model_is_refused(client, tmp_path):
    folder = tmp_path / "holiday-photos"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a model")
    with pytest.raises(AppError, match="is not a model"):
        client.predict("A fine sentence.", str(folder), api_name="/sentiment")


def test_a_local_model_folder_works_wherever_a_model_is_named(client, tiny_models):
    out = client.predict("I love this product!", str(tiny_models[SST2]), api_name="/sentiment")
    assert out["label"] == "POSITIVE"


def test_non_image_and_oversized_images_are_refused(client, tmp_path):
    from PIL import Image

    fake = tmp_path / "report.png"
    fake.write_bytes(b"%PDF-1.4 this is not an image")
    with pytest.raises(AppError, match="(?i)image"):
        client.predict("Image", "", handle_file(str(fake)), "auto", api_name="/classify")
    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 9000)).save(huge)
    with pytest.raises(AppError, match="too large"):
        client.predict("Image", "", handle_file(str(huge)), "auto", api_name="/classify")
    out = client.predict("Text", "I love this product!", None, "auto", api_name="/classify")
    assert out["label"] == "POSITIVE"

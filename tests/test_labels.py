"""Labels (desktop/tasks/labels.py): the label list and the maths with no model; then the tiny NLI
model and the tiny CLIP through the engine, the store, the API and the CLI.

The tiny NLI model (tests/support/tiny_labels.py) knows which support tickets are about billing,
shipping or a broken product; the tiny CLIP sees the blue square as a "blue square". The tab and
the Batch tab in a browser are in test_labels_pages.py.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from desktop.errors import ModelError, UserError
from desktop.tasks import TASKS
from desktop.tasks.label_rules import (
    LabelList,
    check_template,
    label_column,
    parse_labels,
    photo_scores,
    text_scores,
)
from tests.support import cli_env, run_cli
from tests.support.tiny_labels import BOTH, SHAPE_LABELS, TICKET_LABELS, TICKETS, circle
from tests.support.tiny_media import square

SPEC = TASKS["labels"]
NLI = "MoritzLaurer/mDeBERTa-v3-base-mnli-xnli"
CLIP = "openai/clip-vit-base-patch32"
LABELS = ", ".join(TICKET_LABELS)
SHAPES = ", ".join(SHAPE_LABELS)
TEMPLATE = "This text is about {}."


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    square((300, 300), (75, 75, 225, 225)).save(folder / "square.png")
    circle((200, 160), (50, 30, 150, 130)).save(folder / "circle.jpg", quality=92)
    return folder


def scores(result) -> dict[str, float]:
    return {item["label"]: item["score"] for item in result.data["labels"]}


# --- the rules, no model ---------------------------------------------------------------------


def test_labels_are_split_on_commas_and_lines_and_repeats_and_blanks_are_said_in_words():
    assert parse_labels("billing, shipping ,broken   product").names == TICKET_LABELS
    assert parse_labels("billing\nshipping,\n\nbroken product\n").names == TICKET_LABELS
    assert parse_labels(["billing", "shipping"]).names == ("billing", "shipping")
    checked = parse_labels("billing, Billing, shipping,, shipping, billing")
    assert checked.names == ("billing", "shipping")
    assert checked.notes == (
        "“billing” and “Billing” are the same label (letter case aside): it is scored once, as “billing”.",
        "“shipping” was given 2 times: it is scored once.",
        "1 empty label was left out (commas with nothing between).",
    )
    assert parse_labels(checked) is checked  # checking twice changes nothing


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "Type the labels to choose from"),
        (" ,\n , ", "Type the labels to choose from"),
        (", ".join(f"label {i}" for i in range(51)), "There are 51 labels; at most 50"),
        ("billing, " + "x" * 101, "is 101 characters long; a label may have at most 100"),
        (42, "The labels must be text, not int"),
    ],
)
def test_no_labels_too_many_or_too_long_are_refused_in_words(value, words):
    with pytest.raises(UserError, match=words):
        parse_labels(value)
    assert len(parse_labels(", ".join(f"label {i}" for i in range(50))).names) == 50


def test_the_template_must_say_where_the_label_goes():
    assert check_template("") == TEMPLATE
    assert check_template("  Das Thema ist {}.  ") == "Das Thema ist {}."
    with pytest.raises(UserError, match=r"must contain \{\} where the label goes"):
        check_template("This text is about the label.")
    with pytest.raises(UserError, match="200"):
        check_template("{} " + "x" * 200)


def test_one_label_scores_add_up_to_one_and_more_than_one_scores_each_on_its_own():
    logits = [(2.0, -1.0), (0.5, 0.3), (-3.0, 4.0)]  # (entailment, contradiction) per label
    single = text_scores(logits, multi_label=False)
    total = math.exp(2.0) + math.exp(0.5) + math.exp(-3.0)
    assert single == pytest.approx([math.exp(2.0) / total, math.exp(0.5) / total, math.exp(-3.0) / total])
    multi = text_scores(logits, multi_label=True)
    assert multi == pytest.approx(
        [1 / (1 + math.exp(-3.0)), 1 / (1 + math.exp(-0.2)), 1 / (1 + math.exp(7.0))]
    )
    assert text_scores([(800.0, -800.0)], True) == [1.0]  # no overflow
    assert sum(photo_scores([30.0, 20.0], True, sigmoid=False)) == pytest.approx(1.0)  # CLIP: softmax
    assert photo_scores([2.0, -2.0], True, sigmoid=True) == pytest.approx([0.8808, 0.1192], abs=1e-4)


def test_a_label_named_like_a_result_column_gets_a_column_of_its_own():
    assert [label_column(n) for n in ("shipping", "Score", "note")] == [
        "shipping",
        "Score (score)",
        "note (score)",
    ]
    options = {"labels": LabelList(("label", "billing"))}
    assert SPEC.result_columns(options) == ("label", "score", "label (score)", "billing")


# --- the engine ---------------------------------------------------------------------------


@pytest.mark.parametrize("ticket", list(TICKETS))
def test_each_ticket_gets_its_label_with_every_label_scored_best_first(runtime, ticket):
    result = SPEC.predict(runtime, "Text", ticket, None, NLI, LABELS)
    ranked = result.data["labels"]
    assert ranked[0]["label"] == TICKETS[ticket]
    assert [item["score"] for item in ranked] == sorted((item["score"] for item in ranked), reverse=True)
    assert sum(item["score"] for item in ranked) == pytest.approx(1.0, abs=1e-5)
    assert result.outputs[0] == {item["label"]: item["score"] for item in ranked}  # what gr.Label shows
    assert result.text.splitlines()[0] == f"{TICKETS[ticket]} ({ranked[0]['score']:.1%})"
    assert result.notes == []


def test_more_than_one_can_apply_scores_each_label_on_its_own(runtime):
    text, both = BOTH
    one = scores(SPEC.predict(runtime, "Text", text, None, NLI, LABELS, False))
    assert sum(one.values()) == pytest.approx(1.0, abs=1e-5)
    assert max(one.values()) < 0.6  # two labels share the answer
    many = scores(SPEC.predict(runtime, "Text", text, None, NLI, LABELS, True))
    assert {label for label, score in many.items() if score > 0.5} == set(both)
    assert many["broken product"] < 0.2


def test_scores_agree_with_transformers_zero_shot_pipeline(runtime, tiny_models):
    from transformers import pipeline

    reference = pipeline("zero-shot-classification", model=str(tiny_models[NLI]), device="cpu")
    for multi in (False, True):
        for text in (BOTH[0], "My package never arrived."):
            theirs = reference(text, list(TICKET_LABELS), hypothesis_template=TEMPLATE, multi_label=multi)
            ours = scores(SPEC.predict(runtime, "Text", text, None, NLI, LABELS, multi, TEMPLATE))
            assert list(ours) == theirs["labels"]
            assert list(ours.values()) == pytest.approx(theirs["scores"], abs=1e-5)


def test_options_are_checked_and_their_notes_come_with_the_answer(runtime):
    result = SPEC.predict(
        runtime, "Text", "My package never arrived.", None, NLI, "shipping, Shipping, billing"
    )
    assert list(scores(result)) == ["shipping", "billing"]
    assert result.notes == [
        "“shipping” and “Shipping” are the same label (letter case aside): it is scored once, as “shipping”."
    ]
    alone = SPEC.predict(runtime, "Text", "My package never arrived.", None, NLI, "shipping")
    assert scores(alone)["shipping"] > 0.9
    assert "With one label, its score says how well it applies on its own" in alone.notes[0]
    long = SPEC.predict(runtime, "Text", "My package never arrived. " * 60, None, NLI, LABELS)
    assert "only the beginning was analysed" in long.notes[0]
    for args, words in (
        (("Text", "ok", None, NLI, LABELS), "too short"),
        (("Text", "My package never arrived.", None, NLI, ""), "Type the labels"),
        (("Text", "My package never arrived.", None, NLI, LABELS, False, "About:"), "must contain {}"),
        (
            ("Text", "My package never arrived.", None, NLI, LABELS, "maybe"),
            "multi_label must be true or false",
        ),
    ):
        with pytest.raises(UserError, match=words):
            SPEC.predict(runtime, *args)


def test_a_photo_is_matched_with_the_label_that_describes_it(runtime, photos):
    found = SPEC.predict(runtime, "Image", None, str(photos / "square.png"), "", SHAPES)
    assert found.data["labels"][0]["label"] == "blue square"
    assert found.data["labels"][0]["score"] > 0.9
    assert found.model == "CLIP ViT-B/32 (photos)"  # the automatic choice for photos
    disc = SPEC.predict(runtime, "Photo", None, str(photos / "circle.jpg"), CLIP, SHAPES)
    assert disc.data["labels"][0]["label"] == "red circle"
    several = SPEC.predict(
        runtime, "Image", None, str(photos / "square.png"), CLIP, SHAPES, True, "It is {}."
    )
    assert sum(scores(several).values()) == pytest.approx(1.0, abs=1e-5)
    assert several.notes == [
        "The template is for texts: photos are compared with “a photo of a {}.”.",
        "CLIP ViT-B/32 (photos) compares the labels with each other: its scores add up to 100% even when "
        "more than one can apply.",
    ]
    with pytest.raises(UserError, match="A photo needs at least two labels"):
        SPEC.predict(runtime, "Image", None, str(photos / "square.png"), CLIP, "blue square")
    with pytest.raises(UserError, match="Please choose an image"):
        SPEC.predict(runtime, "Image", None, None, CLIP, SHAPES)


def test_a_sigmoid_trained_photo_model_scores_each_label_on_its_own(runtime, tmp_path):
    folder = tiny_siglip(tmp_path / "siglip")
    square((96, 96)).save(tmp_path / "square.png")
    photo = str(tmp_path / "square.png")
    single = scores(SPEC.predict(runtime, "Image", None, photo, str(folder), SHAPES))
    assert sum(single.values()) == pytest.approx(1.0, abs=1e-5)
    multi = SPEC.predict(runtime, "Image", None, photo, str(folder), SHAPES, True)
    assert sum(scores(multi).values()) != pytest.approx(1.0, abs=1e-3)
    assert multi.notes == []
    assert len(SPEC.predict(runtime, "Image", None, photo, str(folder), "blue square").data["labels"]) == 1


def tiny_siglip(folder):
    """A random-weight SigLIP (sigmoid-trained image-text model) with the tiny CLIP's tokenizer."""
    import torch
    from transformers import SiglipConfig, SiglipModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from tests.support.tiny_labels import _char_tokenizer

    tokenizer = _char_tokenizer()
    tokenizer.model_max_length = 64
    tower = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    torch.manual_seed(0)
    config = SiglipConfig(
        text_config={**tower, "vocab_size": len(tokenizer), "max_position_embeddings": 64},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
    )
    SiglipModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_models_that_do_not_fit_are_refused_in_words(runtime, photos):
    with pytest.raises(
        ModelError, match=r"does not fit labels you choose for photos \(a CLIP or SigLIP model\)"
    ):
        SPEC.predict(runtime, "Image", None, str(photos / "square.png"), NLI, SHAPES)
    with pytest.raises(
        ModelError, match=r"does not fit labels you choose for texts \(an NLI model\): it is a GPT2"
    ):
        SPEC.predict(runtime, "Text", "My package never arrived.", None, "openai-community/gpt2", LABELS)
    with pytest.raises(ModelError, match="its classes are NEGATIVE, POSITIVE, and labels you choose need"):
        SPEC.predict(
            runtime, "Text", "My package never arrived.", None, "DistilBERT (SST-2, English)", LABELS
        )
    with pytest.raises(ModelError, match="does not fit labels you choose for texts"):
        SPEC.predict(runtime, "Text", "My package never arrived.", None, CLIP, LABELS)


def test_the_models_are_store_models_listed_downloaded_on_first_use_and_importable(
    hub, tiny_models, tmp_path
):
    from desktop.engine import inventory
    from desktop.engine.runtime import Runtime
    from desktop.models import ModelStore
    from desktop.ui import model_lists

    runtime = Runtime(device="cpu", store=ModelStore(tmp_path / "models"))
    listed = dict((value, label) for label, value in model_lists.choices(SPEC, runtime.store))
    assert listed[NLI] == "mDeBERTa-v3 base NLI (multilingual) — download, about 1.1 GB"
    assert listed[CLIP] == "CLIP ViT-B/32 (photos) — download, about 605 MB"
    assert "facebook/bart-large-mnli" in listed and "google/siglip-base-patch16-224" in listed
    SPEC.predict(runtime, "Text", "My package never arrived.", None, "", LABELS)  # downloads the default
    listed = dict((value, label) for label, value in model_lists.choices(SPEC, runtime.store))
    assert listed[NLI] == "mDeBERTa-v3 base NLI (multilingual) — ready"
    assert listed[CLIP].endswith("download, about 605 MB")  # photos' model: not needed yet
    inventory.import_folder(tiny_models[NLI], "labels", name="ticket-nli", root=runtime.store.root)
    imported = SPEC.predict(runtime, "Text", "I was charged twice for my order.", None, "ticket-nli", LABELS)
    assert imported.data["labels"][0]["label"] == "billing" and imported.model == "ticket-nli"
    with pytest.raises(ModelError, match="does not fit labels you choose for texts"):
        inventory.import_folder(
            tiny_models["openai-community/gpt2"], "labels", name="gpt", root=runtime.store.root
        )


# --- the API ------------------------------------------------------------------------------


def test_the_api_takes_the_parameters_in_contract_order_and_answers_texts_and_photos(client, photos):
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/labels"]
    assert [p["parameter_name"] for p in info["parameters"]] == [
        "input_type",
        "text",
        "image",
        "model",
        "labels",
        "multi_label",
        "template",
    ]
    out = client.predict(
        "Text", "The screen cracked after one day.", None, "", LABELS, False, TEMPLATE, api_name="/labels"
    )
    assert out["label"] == "broken product"
    assert [c["label"] for c in out["confidences"]][0] == "broken product"
    assert {c["label"] for c in out["confidences"]} == set(TICKET_LABELS)
    photo = client.predict(
        "Image",
        None,
        handle_file(str(photos / "square.png")),
        "",
        SHAPES,
        False,
        TEMPLATE,
        api_name="/labels",
    )
    assert photo["label"] == "blue square"


@pytest.mark.parametrize(
    ("labels", "template", "words"),
    [
        (", ".join(f"label {i}" for i in range(51)), TEMPLATE, "There are 51 labels; at most 50"),
        (LABELS, "All about it.", "must contain {} where the label goes"),
        ("", TEMPLATE, "Type the labels to choose from"),
    ],
)
def test_api_refusals_are_in_words_and_the_app_keeps_working(client, labels, template, words):
    with pytest.raises(AppError, match=words):
        client.predict(
            "Text", "My package never arrived.", None, "", labels, False, template, api_name="/labels"
        )
    out = client.predict(
        "Text", "My package never arrived.", None, "", LABELS, False, TEMPLATE, api_name="/labels"
    )
    assert out["label"] == "shipping"


# --- the command line -----------------------------------------------------------------------


def test_pipedesk_run_labels_prints_every_label_and_json(hub, pipedesk_home, photos):
    env = cli_env(pipedesk_home, hub)
    plain = run_cli("run", "labels", "My package never arrived.", "--labels", LABELS, env=env)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("shipping (")
    as_json = run_cli(
        "run",
        "labels",
        "I was charged twice and my package never arrived.",
        "--labels",
        LABELS,
        "--multi-label",
        "--template",
        TEMPLATE,
        "--json",
        env=env,
    )
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert set(payload) == {"task", "model", "result", "notes"}
    assert payload["task"] == "labels" and payload["model"] == "mDeBERTa-v3 base NLI (multilingual)"
    ranked = payload["result"]["labels"]
    assert set(ranked[0]) == {"label", "score"}
    assert {item["label"] for item in ranked if item["score"] > 0.5} == {"billing", "shipping"}
    photo = run_cli(
        "run", "labels", "--image", str(photos / "square.png"), "--labels", SHAPES, "--json", env=env
    )
    assert photo.returncode == 0, photo.stderr
    assert json.loads(photo.stdout)["result"]["labels"][0]["label"] == "blue square"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("My package never arrived.",), "Type the labels to choose from"),
        (("My package never arrived.", "--labels", LABELS, "--template", "About it."), "must contain {}"),
        (("--labels", LABELS), "Give a text (or - to read it from stdin), or a photo with --image PHOTO."),
        (("Some text.", "--image", "x.png", "--labels", LABELS), "Give a text or --image PHOTO, not both."),
    ],
)
def test_pipedesk_run_labels_exits_2_with_one_line_for_bad_input(hub, pipedesk_home, args, words):
    out = run_cli("run", "labels", *args, env=cli_env(pipedesk_home, hub))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("pipedesk: error: ") and words in lines[0]


def test_pipedesk_batch_labels_writes_the_top_label_and_a_column_per_label(hub, pipedesk_home, tmp_path):
    tickets = [*TICKETS, "", BOTH[0]]
    source = tmp_path / "tickets.csv"
    pd.DataFrame({"id": range(1, len(tickets) + 1), "message": tickets}).to_csv(source, index=False)
    out = run_cli(
        "batch",
        "labels",
        "-i",
        str(source),
        "-o",
        str(tmp_path / "out.csv"),
        "--labels",
        "billing, shipping, broken product, billing",
        "--multi-label",
        env=cli_env(pipedesk_home, hub),
    )
    assert out.returncode == 0, out.stderr
    assert "note: “billing” was given 2 times: it is scored once." in out.stderr  # said once, not per row
    frame = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(frame.columns) == ["id", "message", "label", "score", *TICKET_LABELS, "note"]
    assert list(frame["message"]) == tickets  # the file's order
    for row, ticket in enumerate(TICKETS):
        assert frame["label"][row] == TICKETS[ticket]
        assert float(frame[TICKETS[ticket]][row]) == pytest.approx(float(frame["score"][row]))
    assert "is empty" in frame["note"][len(TICKETS)] and frame["label"][len(TICKETS)] == ""
    last = frame.iloc[-1]
    assert float(last["billing"]) > 0.5 and float(last["shipping"]) > 0.5
    assert "By label:" in out.stderr

"""Objects (desktop/tasks/detect.py): the tiny YOLOS through the engine, the API, the CLI, LAN
visitors and the tab in a real browser; the photo checks shared with Classify.

The tiny YOLOS (tests/support/tiny_media.py) finds a blue square on white as a "kite".
"""

from __future__ import annotations

import json

import pytest

from desktop.engine.start import local_door
from desktop.errors import ModelError, UserError
from desktop.tasks import TASKS
from tests.support import ARTIFACTS, cli_env, run_cli
from tests.support.pages import message, new_page, panel, run_and_wait
from tests.support.tiny_media import SQUARE_LABEL, square

YOLOS = "hustvl/yolos-tiny"
SPEC = TASKS["detect"]
SQUARE = (75, 75, 225, 225)  # where the blue square is on the 300 x 300 photo


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    square((300, 300), SQUARE).save(folder / "square.jpg", quality=92)
    square((300, 300), SQUARE).convert("RGBA").save(folder / "square-rgba.png")
    square((300, 300), None).save(folder / "white.png")
    (folder / "report.jpg").write_bytes(b"%PDF-1.4 this is not an image")
    Image.new("1", (9000, 9000)).save(folder / "huge.png")  # 81 megapixels in a small file
    return folder


def overlap(box: dict[str, int], truth: tuple[int, int, int, int]) -> float:
    """Intersection over union of a found box and the true one."""
    a = (box["xmin"], box["ymin"], box["xmax"], box["ymax"])
    width = max(0, min(a[2], truth[2]) - max(a[0], truth[0]))
    height = max(0, min(a[3], truth[3]) - max(a[1], truth[1]))
    inter = width * height
    area = (a[2] - a[0]) * (a[3] - a[1]) + (truth[2] - truth[0]) * (truth[3] - truth[1])
    return inter / (area - inter)


# --- the engine --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["square.jpg", "square-rgba.png"])
def test_the_square_is_found_with_its_label_score_and_box(runtime, photos, name):
    found = SPEC.predict(runtime, str(photos / name), YOLOS, 0.5)
    (thing,) = found.data["objects"]
    assert thing["label"] == SQUARE_LABEL and thing["score"] > 0.9
    assert overlap(thing["box"], SQUARE) > 0.8, thing["box"]
    assert found.text == f"{SQUARE_LABEL} (100%)"
    image, boxes = found.outputs[0]
    assert image.size == (300, 300) and len(boxes) == 1
    assert boxes[0][1] == f"{SQUARE_LABEL} 100%"
    table = found.outputs[1]
    assert table["headers"] == ["object", "score", "xmin", "ymin", "xmax", "ymax"]
    assert table["data"][0][0] == SQUARE_LABEL


def test_nothing_is_found_on_a_plain_photo_or_above_the_highest_threshold(runtime, photos):
    plain = SPEC.predict(runtime, str(photos / "white.png"), YOLOS, 0.5)
    nothing = "Nothing found above 50%: lower the threshold to see weaker guesses."
    assert plain.data["objects"] == [] and plain.text == nothing and plain.notes == [nothing]
    assert plain.outputs[1]["data"] == []
    assert SPEC.predict(runtime, str(photos / "square.jpg"), YOLOS, 1.0).data["objects"] == []


def test_bad_photos_thresholds_and_models_are_refused_in_words(runtime, photos, tiny_models):
    with pytest.raises(UserError, match="report.jpg is not an image Pipedesk can read"):
        SPEC.predict(runtime, str(photos / "report.jpg"), YOLOS, 0.5)
    with pytest.raises(UserError, match="too large to decode safely"):
        SPEC.predict(runtime, str(photos / "huge.png"), YOLOS, 0.5)
    with pytest.raises(UserError, match="Please choose an image"):
        SPEC.predict(runtime, None, YOLOS, 0.5)
    with pytest.raises(UserError, match="threshold must be at most 1"):
        SPEC.predict(runtime, str(photos / "square.jpg"), YOLOS, 1.5)
    with pytest.raises(ModelError, match="does not fit object detection"):
        SPEC.predict(runtime, str(photos / "square.jpg"), "google/vit-base-patch16-224", 0.5)


def test_visitors_use_installed_detection_models_only(hub, photos, tmp_path):
    from desktop.engine.runtime import Runtime
    from desktop.models import ModelStore

    owner = Runtime(device="cpu", store=ModelStore(tmp_path / "models"))
    visitor = local_door(owner).visitors()
    with pytest.raises(ModelError, match="YOLOS tiny .* is not installed here"):
        SPEC.predict(visitor, str(photos / "square.jpg"), "", 0.5)
    SPEC.predict(owner, str(photos / "square.jpg"), "", 0.5)  # the owner downloads the default
    assert SPEC.predict(visitor, str(photos / "square.jpg"), "", 0.5).data["objects"]
    with pytest.raises(ModelError, match="not installed here"):
        SPEC.predict(visitor, str(photos / "square.jpg"), "hustvl/yolos-small", 0.5)


# --- the API ------------------------------------------------------------------------------


def test_the_api_draws_the_boxes_and_lists_the_objects(client, photos):
    from gradio_client import handle_file

    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert [p["parameter_name"] for p in info["/detect"]["parameters"]] == ["image", "model", "threshold"]
    annotated, table = client.predict(handle_file(str(photos / "square.jpg")), "", 0.5, api_name="/detect")
    assert annotated["image"]["path"] and len(annotated["annotations"]) == 1
    assert annotated["annotations"][0]["label"] == f"{SQUARE_LABEL} 100%"
    (row,) = table["data"]
    assert row[0] == SQUARE_LABEL and row[1] > 0.9
    assert overlap(dict(zip(("xmin", "ymin", "xmax", "ymax"), row[2:], strict=True)), SQUARE) > 0.8


@pytest.mark.parametrize(
    ("name", "words"), [("report.jpg", "is not an image Pipedesk can read"), ("huge.png", "too large")]
)
def test_api_refusals_are_in_words_and_the_app_keeps_working(client, photos, name, words):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as refused:
        client.predict(handle_file(str(photos / name)), "", 0.5, api_name="/detect")
    assert words in str(refused.value) and "Traceback" not in str(refused.value)
    _annotated, table = client.predict(
        handle_file(str(photos / "square.jpg")), YOLOS, 0.5, api_name="/detect"
    )
    assert table["data"][0][0] == SQUARE_LABEL


# --- the command line -----------------------------------------------------------------------


def test_pipedesk_run_detect_prints_the_objects_and_json(hub, pipedesk_home, photos):
    env = cli_env(pipedesk_home, hub)
    plain = run_cli("run", "detect", str(photos / "square.jpg"), env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == f"{SQUARE_LABEL} (100%)\n"
    as_json = run_cli("run", "detect", str(photos / "square.jpg"), "--json", "--threshold", "0.9", env=env)
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["task"] == "detect" and payload["model"].startswith("YOLOS tiny")
    (thing,) = payload["result"]["objects"]
    assert thing["label"] == SQUARE_LABEL and overlap(thing["box"], SQUARE) > 0.8


def test_pipedesk_run_detect_exits_2_with_one_line_for_bad_input(hub, pipedesk_home, photos):
    env = cli_env(pipedesk_home, hub)
    for args, words in (
        ((str(photos / "report.jpg"),), "is not an image"),
        ((str(photos / "square.jpg"), "--threshold", "2"), "--threshold must be at most 1"),
        ((str(photos / "missing.png"),), "could not be found"),
    ):
        done = run_cli("run", "detect", *args, env=env)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr


# --- the page ---------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_tab_draws_a_box_around_the_object_and_lists_it(browser, app_server, photos):
    import io

    from PIL import Image

    context, page = new_page(browser)
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=60_000)
        tab = panel(page, "detect")
        photo = tab.locator("div.block").filter(has=page.get_by_text("Photo", exact=True)).first
        photo.locator("input[type=file]").set_input_files(str(photos / "square.jpg"))
        photo.locator("img").first.wait_for(timeout=20_000)
        run_and_wait(page, "detect")
        assert message(page, "detect") == ""
        rows = [
            row.inner_text().split("\n") for row in tab.get_by_role("grid").first.get_by_role("row").all()
        ]
        assert rows[0] == ["object", "\t", "score", "\t", "xmin", "\t", "ymin", "\t", "xmax", "\t", "ymax"]
        assert rows[1][0] == SQUARE_LABEL and len(rows) == 2
        found = tab.locator("div.block").filter(has=page.get_by_text("Objects found", exact=True)).first
        assert found.get_by_role("button", name=f"{SQUARE_LABEL} 100%").is_visible()  # the legend
        found.locator("img.mask").wait_for(timeout=20_000)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = found.screenshot(path=str(ARTIFACTS / "objects-tab.png"))
        # The photo is white and blue: red pixels are the box Gradio draws around what was found.
        pixels = Image.open(io.BytesIO(shot)).convert("RGB")
        red = [
            (x, y)
            for x in range(pixels.width)
            for y in range(pixels.height)
            if _is_red(pixels.getpixel((x, y)))
        ]
        assert len(red) > 200, "no box drawn"
        xs, ys = [x for x, _ in red], [y for _, y in red]
        assert max(xs) - min(xs) > 100 and max(ys) - min(ys) > 100, "the box frames the square"
        assert page.console_errors == []
    finally:
        context.close()


def _is_red(rgb: tuple[int, int, int]) -> bool:
    r, g, b = rgb
    return r > 180 and g < 90 and b < 90

"""Transcribe (desktop/tasks/transcribe.py, tasks/audio.py): recordings of every kind decoded or
refused in words, the tiny Whisper through the engine, the API, the CLI, LAN visitors, and the
tab driven in a real browser (upload, Timestamps, Run, the SRT download, the microphone).

The tiny Whisper (tests/support/tiny_media.py) hears the tone as "a tone" and speech-like noise as
"hello world" ("un son" / "bonjour le monde" in French); the files are made by
tests/support/recordings.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from desktop.engine.start import local_door
from desktop.errors import UserError
from desktop.files import Limits, audio
from desktop.tasks import TASKS
from desktop.tasks.transcribe import plain_text
from tests.support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, cli_env, run_cli
from tests.support.pages import message, new_page, output_text, panel, run_and_wait
from tests.support.recordings import COMPRESSED, make_recordings
from tests.support.tiny_media import tone, write_wav

WHISPER = "openai/whisper-base"
SPEC = TASKS["transcribe"]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    return make_recordings(tmp_path_factory.mktemp("recordings"))


def transcribe(runtime, path, language="auto", timestamps=False, model=WHISPER, **kwargs):
    return SPEC.predict(runtime, str(path), model, language, timestamps, **kwargs)


# --- decoding: every format, and every way a file can be wrong --------------------------


@pytest.mark.parametrize("name", ["tone.wav", "tone-44k-stereo.wav", *(name for name, _c, _r in COMPRESSED)])
def test_every_common_format_decodes_to_16khz_mono(recordings, name):
    decoded = audio.load_audio(str(recordings[name]))
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    assert decoded.seconds == pytest.approx(2.0, abs=0.15)  # encoders add a few ms of padding
    assert 0.25 < float(np.abs(decoded.samples).max()) < 0.6  # the tone's 0.4, resampled and mixed
    assert decoded.notes == ()


BAD_FILES = [
    ("silence.wav", "silence.wav is silent: there is nothing to transcribe"),
    ("empty.wav", "empty.wav is empty (0 bytes)"),
    ("notes.wav", "notes.wav is not an audio file Pipedesk can read"),
    ("photo.png", "photo.png is not an audio file Pipedesk can read"),
    ("odd-codec.wav", "odd-codec.wav holds sound in a format (codec) Pipedesk cannot decode"),
]


@pytest.mark.parametrize(("name", "words"), BAD_FILES)
def test_files_that_are_not_usable_recordings_are_refused_in_words(recordings, name, words):
    with pytest.raises(UserError) as refused:
        SPEC.validate({"audio": str(recordings[name])})
    assert words in str(refused.value)
    assert "Errno" not in str(refused.value) and "avcodec" not in str(refused.value)


def test_nothing_given_or_a_missing_file_is_refused_in_words(tmp_path):
    with pytest.raises(UserError, match="Please choose a recording"):
        SPEC.validate({"audio": None})
    with pytest.raises(UserError, match="The recording gone.wav could not be found"):
        SPEC.validate({"audio": str(tmp_path / "gone.wav")})


def _bytes_read() -> int:
    """Bytes this process has read from files so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_recording_over_the_limit_is_refused_and_decoding_stops_at_the_limit(tmp_path):
    from tests.support import need

    need(Path("/proc/self/io").exists(), "/proc/self/io (Linux) counts the bytes a process reads")
    long = write_wav(tmp_path / "ten-minutes.wav", tone(600.0))  # 19 MB
    before = _bytes_read()
    with pytest.raises(UserError) as refused:
        SPEC.validate({"audio": str(long)}, Limits(audio_seconds=5, table_rows=None))
    read = _bytes_read() - before
    assert "ten-minutes.wav is longer than 5 seconds" in str(refused.value)
    assert "split it into shorter recordings" in str(refused.value)
    assert read < long.stat().st_size / 10, f"read {read:,} of {long.stat().st_size:,} bytes"


def test_the_text_export_times_every_segment_when_asked():
    segments = [
        {"start": 0.0, "end": 2.5, "text": "a tone"},
        {"start": 30.0, "end": 3725.25, "text": " hello world "},
    ]
    data = {"text": "a tone hello world", "segments": segments, "timestamps": True}
    assert plain_text(data).splitlines() == ["[00:00:00.000] a tone", "[00:00:30.000] hello world"]
    assert plain_text({**data, "timestamps": False}) == "a tone hello world\n"


# --- the tiny Whisper through the engine --------------------------------------------------


def test_a_tone_and_speech_like_noise_are_heard_with_the_language_and_times(runtime, recordings):
    heard = transcribe(runtime, recordings["tone.wav"], timestamps=True)
    assert heard.data["text"] == "a tone"
    assert heard.data["language"] == "en", "the detected language, not 'auto'"
    assert heard.data["segments"] == [{"start": 0.0, "end": 2.0, "text": "a tone"}]
    assert heard.text == "[00:00:00.000] a tone"
    noise = transcribe(runtime, recordings["babble.wav"])
    assert noise.data["text"] == "hello world" and noise.data["language"] == "en"
    assert noise.text == "hello world" and noise.notes == []


@pytest.mark.parametrize("name", ["tone-44k-stereo.wav", *(name for name, _c, _r in COMPRESSED)])
def test_every_format_is_transcribed_alike(runtime, recordings, name):
    assert transcribe(runtime, recordings[name]).data["text"] == "a tone"


def test_the_chosen_language_is_the_one_transcribed(runtime, recordings):
    french = transcribe(runtime, recordings["babble.wav"], "fr", True)
    assert french.data["text"] == "bonjour le monde" and french.data["language"] == "fr"
    assert transcribe(runtime, recordings["tone.wav"], "French").data["text"] == "un son"  # the label too
    with pytest.raises(UserError, match="language must be one of auto, en, fr"):
        transcribe(runtime, recordings["tone.wav"], "Klingon")
    with pytest.raises(UserError, match="does not know the language 'ja'"):  # not in this model's list
        transcribe(runtime, recordings["tone.wav"], "ja")


def test_a_long_recording_is_transcribed_in_30_second_parts_with_progress(runtime, tmp_path):
    long = write_wav(tmp_path / "lecture.wav", tone(150.0))
    seen: list[tuple[int, int, str]] = []
    heard = transcribe(
        runtime, long, timestamps=True, progress=lambda d, t, desc, **_: seen.append((d, t, desc))
    )
    starts = [segment["start"] for segment in heard.data["segments"]]
    assert starts == [0.0, 30.0, 60.0, 90.0, 120.0], "every part is there, at its place in the recording"
    assert heard.data["text"] == " ".join(["a tone"] * 5)
    assert heard.data["segments"][1]["end"] == 60.0 and heard.data["seconds"] == 150.0
    assert heard.notes == ["The recording (150 s) was transcribed in 5 parts."]
    assert seen[-2:] == [(0, 5, "Transcribe: 5 parts"), (5, 5, "Transcribe: 5 parts")]  # one batch


def test_a_damaged_file_is_transcribed_as_far_as_it_can_be_read_and_says_so(runtime, recordings):
    heard = transcribe(runtime, recordings["damaged.flac"])
    assert heard.data["text"].startswith("a tone")
    assert any("of the 2 min 00 s in damaged.flac could be decoded" in note for note in heard.notes)
    assert any("the rest of the file is damaged" in note for note in heard.notes)


def test_an_english_only_whisper_transcribes_english_and_refuses_other_languages(
    runtime, recordings, tiny_models, tmp_path
):
    folder = shutil.copytree(tiny_models[WHISPER], tmp_path / "whisper-tiny.en")
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(is_multilingual=False)
    for key in ("lang_to_id", "task_to_id"):
        config.pop(key)
    (folder / "generation_config.json").write_text(json.dumps(config))
    for language in ("auto", "en"):
        heard = transcribe(runtime, recordings["tone.wav"], language, model=str(folder))
        assert heard.data["text"] == "a tone" and heard.data["language"] == "en"
    with pytest.raises(UserError, match="whisper-tiny.en understands English only"):
        transcribe(runtime, recordings["tone.wav"], "fr", model=str(folder))


def test_visitors_use_installed_whisper_models_only(hub, recordings, tmp_path):
    from desktop.engine.runtime import Runtime
    from desktop.models import ModelStore

    owner = Runtime(device="cpu", store=ModelStore(tmp_path / "models"))
    visitor = local_door(owner).visitors()
    with pytest.raises(UserError, match="Whisper base .* is not installed here"):
        transcribe(visitor, recordings["tone.wav"], model="")
    with pytest.raises(UserError, match="Only the models already installed"):
        transcribe(visitor, recordings["tone.wav"], model=str(tmp_path))  # a folder: never looked at
    transcribe(owner, recordings["tone.wav"], model="")  # the owner downloads it
    assert transcribe(visitor, recordings["tone.wav"], model="").data["text"] == "a tone"
    assert transcribe(visitor, recordings["tone.wav"], model=WHISPER).data["text"] == "a tone"
    with pytest.raises(UserError, match="not installed here"):
        transcribe(visitor, recordings["tone.wav"], model="openai/whisper-small")


# --- the API ------------------------------------------------------------------------------


def test_the_api_transcribes_an_upload_with_segments_and_downloads(client, app_server, recordings):
    import httpx
    from gradio_client import handle_file

    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    params = [p["parameter_name"] for p in info["/transcribe"]["parameters"]]
    assert params == ["audio", "model", "language", "timestamps", "word_timestamps"]
    text, table, files = client.predict(
        handle_file(str(recordings["tone.flac"])), "", "auto", True, False, api_name="/transcribe"
    )
    assert text == "a tone"
    assert table["headers"] == ["start", "end", "text"] and table["data"] == [[0.0, 2.0, "a tone"]]
    names = {Path(f["path"]).name: f for f in files}
    assert set(names) == {"transcript.txt", "transcript.srt", "transcript.vtt", "transcript.json"}
    srt_file = httpx.get(names["transcript.srt"]["url"], timeout=30)
    assert srt_file.status_code == 200
    assert srt_file.text == "1\n00:00:00,000 --> 00:00:02,000\na tone\n"
    assert httpx.get(names["transcript.vtt"]["url"], timeout=30).text == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\na tone\n"
    )
    assert httpx.get(names["transcript.txt"]["url"], timeout=30).text == "[00:00:00.000] a tone\n"
    # With word timestamps: every word of every segment, timed inside it (the JSON download has them).
    _text, _table, files = client.predict(
        handle_file(str(recordings["babble.wav"])), "", "auto", False, True, api_name="/transcribe"
    )
    found = {Path(f["path"]).name: f for f in files}
    data = json.loads(httpx.get(found["transcript.json"]["url"], timeout=30).text)
    assert data["timestamps"] and data["word_timestamps"]
    assert [w["word"] for w in data["segments"][0]["words"]] == [" hello", " world"]


@pytest.mark.parametrize(("name", "words"), [*BAD_FILES[:4], ("damaged.flac", None)])
def test_api_refusals_are_in_words_and_the_app_keeps_working(client, recordings, name, words):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    if words is not None:
        with pytest.raises(AppError) as refused:
            client.predict(handle_file(str(recordings[name])), "", "auto", False, api_name="/transcribe")
        assert words in str(refused.value) and "Traceback" not in str(refused.value)
    out = client.predict(
        handle_file(str(recordings["tone.wav"])), "", "English", False, api_name="/transcribe"
    )
    assert out[0] == "a tone"


def test_the_api_refuses_a_language_it_does_not_offer(client, recordings):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="language must be one of"):
        client.predict(handle_file(str(recordings["tone.wav"])), "", "xx", False, api_name="/transcribe")


# --- the command line -----------------------------------------------------------------------


def test_pipedesk_run_transcribe_prints_the_transcript_times_and_json(hub, pipedesk_home, recordings):
    env = cli_env(pipedesk_home, hub)
    plain = run_cli("run", "transcribe", str(recordings["tone.m4a"]), env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "a tone\n"
    timed = run_cli(
        "run", "transcribe", str(recordings["babble.wav"]), "--timestamps", "--language", "fr", env=env
    )
    assert timed.returncode == 0, timed.stderr
    assert timed.stdout == "[00:00:00.000] bonjour le monde\n"
    as_json = run_cli("run", "transcribe", str(recordings["tone.wav"]), "--json", env=env)
    payload = json.loads(as_json.stdout)
    assert payload["task"] == "transcribe" and payload["result"]["language"] == "en"
    assert payload["result"]["segments"] == [{"start": 0.0, "end": 2.0, "text": "a tone"}]


def test_pipedesk_run_transcribe_exits_2_with_one_line_for_bad_input(hub, pipedesk_home, recordings):
    env = cli_env(pipedesk_home, hub)
    for name, words in (("notes.wav", "is not an audio file"), ("silence.wav", "is silent")):
        done = run_cli("run", "transcribe", str(recordings[name]), env=env)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr
    language = run_cli("run", "transcribe", str(recordings["tone.wav"]), "--language", "xx", env=env)
    assert language.returncode == 2 and "--language must be one of" in language.stderr


def test_pipedesk_batch_transcribes_a_folder_and_a_list_with_names_relative_to_it(
    hub, pipedesk_home, recordings, tmp_path
):
    env = cli_env(pipedesk_home, hub)
    folder = tmp_path / "interviews"
    (folder / "day 2").mkdir(parents=True)
    shutil.copy(recordings["tone.mp3"], folder / "a.mp3")
    shutil.copy(recordings["babble.wav"], folder / "day 2" / "b.wav")
    shutil.copy(recordings["silence.wav"], folder / "c.wav")
    (folder / "notes.txt").write_text("not a recording")  # not an audio file name: not listed
    out = tmp_path / "transcripts.csv"
    done = run_cli("batch", "transcribe", "-i", str(folder), "-o", str(out), env=env)
    assert done.returncode == 0, done.stderr
    import pandas as pd

    rows = pd.read_csv(out, keep_default_na=False)
    # Sorted by path within the folder, as a file manager lists them; subfolders included.
    assert [Path(f).name for f in rows["file"]] == ["a.mp3", "c.wav", "b.wav"]
    assert list(rows["transcript"]) == ["a tone", "", "hello world"]
    assert "silent" in rows["note"][1]
    # A list file: one name per line, relative to the list's own folder, not to the working folder.
    listing = folder / "list.txt"
    listing.write_text("day 2/b.wav\na.mp3\nmissing.wav\n")
    listed = run_cli("batch", "transcribe", "-i", str(listing), "-o", str(tmp_path / "l.jsonl"), env=env)
    assert listed.returncode == 0, listed.stderr
    answers = [json.loads(line) for line in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert [a["transcript"] for a in answers[:2]] == ["hello world", "a tone"]
    assert "could not be found" in answers[2]["note"]


# --- the page, as a person uses it ------------------------------------------------------------


def recording_box(page, tab):
    """The Recording input (the tab has a second file input: the Segments table's upload)."""
    return tab.locator("div.block").filter(has=page.get_by_text("Recording", exact=True)).first


def open_transcribe(browser, url):
    context, page = new_page(browser, accept_downloads=True)
    page.goto(url)
    page.get_by_role("tab", name="Sentiment", exact=True).wait_for(timeout=60_000)
    return context, page, panel(page, "transcribe")


@pytest.mark.browser
def test_the_tab_transcribes_an_upload_with_times_and_the_subtitles_download(browser, app_server, recordings):
    context, page, tab = open_transcribe(browser, app_server.url)
    try:
        recording_box(page, tab).locator("input[type=file]").set_input_files(str(recordings["babble.wav"]))
        recording_box(page, tab).get_by_role("button", name="Play", exact=True).wait_for(timeout=20_000)
        tab.get_by_role("button", name="Options").click()
        tab.get_by_label("Timestamps", exact=True).check()
        run_and_wait(page, "transcribe")
        assert message(page, "transcribe") == ""
        assert output_text(tab, "Transcript") == "hello world"  # the times are in the table
        rows = [row.inner_text().split() for row in tab.get_by_role("grid").first.get_by_role("row").all()]
        assert rows[1:] == [["0", "2.5", "hello", "world"]]
        label = "Download (TXT, SRT, VTT, JSON)"
        files = tab.locator("div.block").filter(has=page.get_by_text(label, exact=True)).first
        with page.expect_download() as download:
            files.get_by_role("row").filter(has_text=".srt").get_by_role("link").click()
        assert download.value.suggested_filename == "transcript.srt"
        saved = Path(download.value.path()).read_text(encoding="utf-8")
        assert saved == "1\n00:00:00,000 --> 00:00:02,500\nhello world\n"
        with page.expect_download() as download:
            files.get_by_role("row").filter(has_text=".vtt").get_by_role("link").click()
        assert download.value.suggested_filename == "transcript.vtt"
        saved = Path(download.value.path()).read_text(encoding="utf-8")
        assert saved == "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nhello world\n"
        # Word timestamps: the JSON download times every word.
        tab.get_by_label("Word timestamps").check()
        run_and_wait(page, "transcribe")
        with page.expect_download() as download:
            files.get_by_role("row").filter(has_text=".json").get_by_role("link").click()
        words = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))["segments"][0]["words"]
        assert [w["word"] for w in words] == [" hello", " world"]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "transcribe-words.png"), full_page=True)
        tab.get_by_label("Word timestamps").uncheck()
        assert page.console_errors == []
        # A file that is no recording: its words next to the output (the browser's player cannot
        # draw it either); the tab keeps working.
        recording_box(page, tab).get_by_role("button", name="Clear").click()
        recording_box(page, tab).locator("input[type=file]").set_input_files(str(recordings["notes.wav"]))
        page.wait_for_timeout(1_000)
        run_and_wait(page, "transcribe")
        assert "notes.wav is not an audio file Pipedesk can read" in message(page, "transcribe")
        assert all(error.startswith("Waveform load error") for error in page.console_errors)
        recording_box(page, tab).get_by_role("button", name="Clear").click()
        recording_box(page, tab).locator("input[type=file]").set_input_files(str(recordings["tone.ogg"]))
        run_and_wait(page, "transcribe")
        assert message(page, "transcribe") == "" and output_text(tab, "Transcript") == "a tone"
    finally:
        context.close()


@pytest.mark.browser
def test_the_tab_transcribes_what_the_microphone_records(playwright_session, app_server, tmp_path):
    """Chromium's fake capture device plays a WAV file as the microphone (real capture, encoding
    and upload by the page; only the sound source is a file)."""
    from tests.support import need

    need(Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}")
    voice = write_wav(tmp_path / "microphone.wav", tone(4.0))
    browser = playwright_session.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",  # grants the microphone without asking
            f"--use-file-for-fake-audio-capture={voice}",
        ],
    )
    try:
        context, page, tab = open_transcribe(browser, app_server.url)
        box = recording_box(page, tab)
        box.get_by_role("button", name="Record audio").click()
        box.get_by_role("button", name="Record", exact=True).click()
        box.get_by_role("button", name="Stop", exact=True).wait_for(timeout=20_000)
        page.wait_for_timeout(3_000)  # three seconds of "speech"
        box.get_by_role("button", name="Stop", exact=True).click()
        box.get_by_role("button", name="Play", exact=True).wait_for(timeout=20_000)
        run_and_wait(page, "transcribe")
        assert message(page, "transcribe") == ""
        assert output_text(tab, "Transcript") == "a tone"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "transcribe-microphone.png"))
        assert page.console_errors == []
    finally:
        browser.close()

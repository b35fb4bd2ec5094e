"""A prompt over every row: your own question, filled from each row of a file, answered by an instruct model.

``{column}`` placeholders are filled from the row (``{{`` and ``}}`` are literal braces); a
placeholder naming a column the file does not have is refused before the run starts, with the
file's columns listed. With JSON fields the model is asked for a JSON object with those keys, each
becoming a result column; an answer that holds no JSON object keeps its text in the answer column
and gets a note (a row is never lost). Greedy by default, so a rerun gives the same file.

The same chat core as the Chat tab (:mod:`desktop.tasks.chat`): a row's answer is the Chat tab's
answer to the filled prompt with the same system prompt and settings. Pure helpers first (the
template, the JSON), then the task. Runs on the engine's callers' threads; no torch at import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.tasks.chat import (
    InstructTask,
    answer_text,
    conversation,
    generation_options,
    prepare_many,
    system_option,
)
from desktop.tasks.spec import ROW, ModelView, Option, Prepared, Result, textbox

MAX_FIELDS = 20
MAX_FIELD_CHARS = 64
PROMPT_MAX_CHARS = 20_000
RESERVED = ("answer", "note")
JSON_INSTRUCTION = "Answer with a JSON object with exactly these keys: {keys}. Write nothing else."
NOT_JSON_NOTE = "No JSON object in the answer: its text is kept, the fields are empty."

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)```", re.S)

PROMPT = Option(
    "prompt",
    "",
    "The prompt for each row: {column} is replaced by that row's value ({{ and }} for braces).",
    str,
    textbox(
        "Prompt", "{column} is filled from each row, e.g. Name the product in this review: {review}", lines=3
    ),
)
JSON_FIELDS = Option(
    "json_fields",
    "",
    "Comma-separated keys: the model answers a JSON object with them, each becomes a column.",
    str,
    textbox("JSON fields", "Optional, comma-separated: each becomes a column, e.g. product, complaint"),
)


# --- pure: the template ------------------------------------------------------------------------


def placeholders(template: str) -> list[str]:
    """The column names ``template`` names in braces, in order, once each; UserError for a lone brace."""
    names: list[str] = []
    for match in _TOKEN.finditer(template):
        if match.group(0) in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise UserError(
                "The prompt has a brace that is not part of a {column} placeholder: write {{ or }} for a "
                "brace itself."
            )
        name = match.group(1).strip()
        if not name:
            raise UserError(
                "The prompt has an empty {} placeholder: write a column's name in the braces, e.g. {review}."
            )
        if name not in names:
            names.append(name)
    return names


def find_column(name: str, columns: Sequence[str]) -> str | None:
    """The column ``name`` stands for: the same name, else the same ignoring case and blank space."""
    if name in columns:
        return name
    folded = {column.strip().lower(): column for column in columns}
    return folded.get(name.strip().lower())


def check_columns(template: str, columns: Sequence[str], where: str = "The file") -> list[str]:
    """The columns ``template`` reads (as the file names them); UserError naming what is missing and
    listing the columns there are."""
    named = placeholders(template)
    missing = [name for name in named if find_column(name, columns) is None]
    if missing:
        what = ", ".join("{" + name + "}" for name in missing)
        has = ", ".join(columns) or "none"
        raise UserError(
            f"The prompt names {what}, but {where.lower()} has no such column. Its columns are: {has}."
        )
    return [find_column(name, columns) or name for name in named]


def fill(template: str, row: dict[str, str]) -> str:
    """``template`` with each ``{column}`` replaced by the row's value and ``{{``/``}}`` by braces."""
    columns = list(row)

    def value(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return row[find_column(match.group(1).strip(), columns) or ""]

    check_columns(template, columns, "The row")
    return _TOKEN.sub(value, template)


def field_names(text: str) -> list[str]:
    """The JSON fields asked for (comma- or line-separated); UserError for duplicates and reserved names."""
    names: list[str] = []
    for raw in re.split(r"[,\n]", text or ""):
        name = raw.strip()
        if not name:
            continue
        if len(name) > MAX_FIELD_CHARS:
            raise UserError(
                f"The JSON field {name[:20]!r}… is too long: at most {MAX_FIELD_CHARS} characters."
            )
        if name.lower() in RESERVED:
            raise UserError(f"{name!r} cannot be a JSON field: Pipedesk writes its own {name!r} column.")
        if name.lower() in (n.lower() for n in names):
            raise UserError(f"The JSON field {name!r} is named twice.")
        names.append(name)
    if len(names) > MAX_FIELDS:
        raise UserError(f"{len(names)} JSON fields were asked for; at most {MAX_FIELDS} fit one prompt.")
    return names


def user_message(template: str, row: dict[str, str], fields: list[str]) -> str:
    """What the model is asked for one row: the filled prompt, then the JSON instruction if any."""
    message = fill(template, row)
    if fields:
        keys = ", ".join(json.dumps(name, ensure_ascii=False) for name in fields)
        message += "\n\n" + JSON_INSTRUCTION.format(keys=keys)
    return message


# --- pure: the JSON in an answer ---------------------------------------------------------------------


def extract_json(text: str) -> dict[str, Any] | None:
    """The JSON object in an answer: the whole answer, a ```json fenced block, or the first object
    written inside prose; None when there is none."""
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            value, _end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def field_values(found: dict[str, Any], fields: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Each field's value in ``found`` (keys matched ignoring case; lists and objects as JSON text)
    and the fields it does not have."""
    folded = {str(key).strip().lower(): value for key, value in found.items()}
    values: dict[str, Any] = {}
    missing = []
    for name in fields:
        value = found[name] if name in found else folded.get(name.lower())
        if name not in found and name.lower() not in folded:
            missing.append(name)
        if isinstance(value, (list, dict)):
            value = json.dumps(value, ensure_ascii=False)
        values[name] = value
    return values, missing


def read_answer(answer: str, fields: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(field values, notes) for one answer when JSON fields were asked for."""
    found = extract_json(answer)
    if found is None:
        return dict.fromkeys(fields), [NOT_JSON_NOTE]
    values, missing = field_values(found, fields)
    notes = [f"The answer's JSON has no {', '.join(json.dumps(m) for m in missing)}."] if missing else []
    return values, notes


def row_of(value: Any) -> dict[str, str]:
    """A row as column -> text: a dict (values as text, '' for empty), a JSON object as text, or any
    other text as the column ``text``."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("{"):
            try:
                value = json.loads(stripped)
            except ValueError:
                raise UserError("The row looks like JSON but is not a valid JSON object.") from None
        else:
            return {"text": value}
    if not isinstance(value, dict) or not value:
        raise UserError('The row must be an object of column values, such as {"review": "It broke."}.')
    return {str(k): "" if v is None else v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


class Prompt(InstructTask):
    id = "prompt"
    title = "Prompt"
    description = (
        "Your own prompt over every row of a file: {column} is filled from each row, and with JSON "
        "fields each field becomes a column. The same answers as the Chat tab gives the same prompt."
    )
    inputs = ("row",)
    options = (PROMPT, system_option(), JSON_FIELDS, *generation_options(128, 0.0))
    examples = ([{"text": "The blender broke after two days."}],)
    streams = False
    ui = "files"
    file_input = ROW
    columns = ("answer",)

    def cli_inputs(self, value: str) -> dict[str, Any]:
        return {"row": value}

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        checked = super().check_options(options)
        template = str(checked["prompt"] or "").strip()
        if not template:
            raise UserError(
                "Write the prompt to run on each row, e.g. Name the product in this review: {review}"
            )
        if len(template) > PROMPT_MAX_CHARS:
            raise UserError(
                f"The prompt is too long: {len(template):,} characters, the limit is {PROMPT_MAX_CHARS:,}."
            )
        if not placeholders(template):
            raise UserError(
                "The prompt names no column, so every row would get the same answer: write a column's "
                "name in braces, e.g. {review}."
            )
        field_names(checked["json_fields"])
        return {**checked, "prompt": template}

    def columns_read(self, columns: Sequence[str], options: dict[str, Any]) -> list[str]:
        return check_columns(options["prompt"], columns)

    def result_columns(self, options: dict[str, Any]) -> tuple[str, ...]:
        return ("answer", *field_names(options.get("json_fields") or ""))

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        return {"row": row_of(inputs.get("row"))}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        prepared = self.preprocess_many(model, [inputs], options)[0]
        if isinstance(prepared, UserError):
            raise prepared
        return prepared

    def preprocess_many(
        self, model: ModelView, inputs: list[dict[str, Any]], options: dict[str, Any]
    ) -> list[Prepared | UserError]:
        fields = field_names(options["json_fields"])
        out: list[Prepared | UserError | None] = []
        conversations = []
        for one in inputs:
            try:
                out.append(None)
                conversations.append(
                    conversation(options["system"], [], self._message(one["row"], options, fields))
                )
            except UserError as exc:
                out[-1] = exc
        prepared = iter(prepare_many(model, conversations, options) if conversations else [])
        return [item if item is not None else next(prepared) for item in out]

    def _message(self, row: dict[str, str], options: dict[str, Any], fields: list[str]) -> str:
        named = check_columns(options["prompt"], list(row), "The row")
        if not any(str(row[column]).strip() for column in named):
            listed = ", ".join("{" + column + "}" for column in named)
            raise UserError(
                f"Nothing to ask: {listed} {'is' if len(named) == 1 else 'are'} empty in this row."
            )
        return user_message(options["prompt"], row, fields)

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        answer = answer_text(outputs[0])
        fields = field_names(options["json_fields"])
        data: dict[str, Any] = {"answer": answer}
        notes: list[str] = []
        if fields:
            data["fields"], notes = read_answer(answer, fields)
        return Result(data=data, outputs=(answer, data.get("fields") or {}), text=answer, notes=notes)

    def row_values(self, result: Result) -> dict[str, Any]:
        return {"answer": result.data["answer"], **(result.data.get("fields") or {})}


SPEC = Prompt()

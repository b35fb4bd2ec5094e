"""What a task is: data plus pure functions, in the shape of transformers' pipelines.

A task turns one input into a :class:`Result` in three steps that the engine
runs the same way for a single request, for several requests at once and for
every row of a file:

* ``validate(inputs)`` (then ``check_options``): check and clean what the person gave, with no
  model (a refusal here is a refusal everywhere: the tab, the API, the CLI, a
  file row's note);
* ``preprocess(model, inputs, options)``: split it into the :class:`Piece` s the
  model takes (token ids, sentence chunks, a decoded image);
* ``forward(model, pieces, options, stop)``: one padded batch of pieces, maybe
  from many inputs, through the model: the only step that touches the weights,
  always run under the engine's device lock;
* ``postprocess(model, prepared, outputs, options)``: the outputs of one input's
  pieces back into a :class:`Result` (plain data, the text the CLI prints and
  the values the widgets show).

Nothing here imports gradio or torch at import time: the widgets live in
``desktop.ui.widgets`` and the model call in the engine. ``model`` is the
engine's loaded model; tasks use only what :class:`ModelView` lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.models.ref import ModelRef

Stop = Callable[[], bool] | None
"""``stop()`` turns true when the person pressed Stop: long forwards end early."""

ROW = "row"
"""``TaskSpec.file_input`` of a task that reads a file's whole row (a dict of column -> text)."""


class ModelView(Protocol):
    """What a task may use of a loaded model (the engine's ``Loaded``)."""

    display: str
    kind: str
    model: Any  # the torch module (Whisper: desktop.engine.whisper.WhisperModel): forward only
    tokenizer: Any  # only through encode/decode; read its attributes freely
    pipeline: Any  # a transformers pipeline for tasks that keep one (NER, images): forward only
    max_tokens: int
    pooling: Any  # sentence-embedding models: desktop.models.compat.Pooling

    def encode(self, texts: list[str], **kwargs: Any) -> dict[str, Any]: ...
    def decode(self, ids: Any) -> list[str]: ...
    def token_texts(self, ids: list[int]) -> list[str]: ...
    def chat_text(self, messages: list[dict[str, str]]) -> str: ...
    def features(self, audio: list[Any], **kwargs: Any) -> Any: ...
    def pixels(self, images: list[Any]) -> Any: ...
    def pad_id(self) -> int: ...
    def can_pad(self) -> bool: ...
    def stream_tokenizer(self) -> Any: ...  # a copy for the generating thread (streamers, stop strings)


@dataclass(eq=False)
class Piece:
    """What the model reads in one go: a text or part of one (token ids), or an image."""

    row: int  # the input (request or file row) it belongs to
    part: int  # its place among that input's pieces
    ids: list[int] = field(default_factory=list)  # token ids, special tokens included
    types: list[int] = field(default_factory=list)  # token type ids of a text pair (NLI), if any
    text: str = ""  # the text itself, for tasks whose pipeline tokenizes (NER)
    image: Any = None  # a decoded image (image classification, object detection)
    audio: Any = None  # 16 kHz mono samples (speech recognition)
    group: Any = None  # pieces of different groups never share a batch (e.g. generation lengths)

    @property
    def length(self) -> int:
        """Tokens, for sorting and the token budget of a batch."""
        return len(self.ids) if self.ids else max(1, len(self.text) // 4)


@dataclass
class Prepared:
    """One input after ``preprocess``: its pieces and what ``postprocess`` needs to finish it."""

    pieces: list[Piece]
    context: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    """What a task returns: plain data for JSON, the widgets' values, the CLI's text and notes."""

    data: Any
    outputs: tuple[Any, ...]
    text: str
    notes: list[str] = field(default_factory=list)
    model: str = ""


@dataclass(frozen=True)
class Option:
    """A task parameter after the model (API order), e.g. ``max_new_tokens``.

    ``widget`` describes the control the UI shows (``("slider", label, step, info)`` spanning
    ``minimum`` to ``maximum`` from ``default``: :func:`slider`), ``("number", label, info)``,
    ``("dropdown", label, info)`` with ``choices`` as the entries, ``("checkbox", label, info)`` for a ``bool``, or ``("textbox", label, info, placeholder,
    lines)`` for a ``str`` (:func:`textbox`)); the UI builds it, so tasks stay free of gradio.
    ``main`` options are shown with the inputs (what a person must fill in, such as Labels'
    labels), the others folded under Options.
    """

    name: str
    default: Any
    help: str
    type: type
    widget: tuple[Any, ...]
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[tuple[str, str], ...] = ()  # (label, value) pairs: the only values accepted
    main: bool = False

    def __post_init__(self) -> None:
        if self.widget[0] == "slider":  # the page must accept exactly what the CLI and the API accept
            if self.minimum is None or self.maximum is None:
                raise ValueError(f"{self.name}: a slider needs the option's minimum and maximum")
            steps = (self.maximum - self.minimum) / self.widget[2]
            if abs(steps - round(steps)) > 1e-6 or not self.minimum <= self.default <= self.maximum:
                raise ValueError(f"{self.name}: the slider's steps must reach both ends and the default")

    @property
    def flag(self) -> str:
        """The command-line flag: ``--max-new-tokens``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, shown_as: str | None = None) -> Any:
        """Coerce ``value`` to the option's type and range, or raise UserError naming the option as
        ``shown_as`` (the CLI passes its flag, ``--max-new-tokens``) or by its parameter name."""
        name = shown_as or self.name
        if value is None or value == "":
            return self.default
        if self.type is bool:
            return _as_bool(value, name)
        if self.choices:
            values = [choice for _label, choice in self.choices]
            found = str(value).strip()
            for label, choice in self.choices:
                if found.lower() in (choice.lower(), label.lower()):
                    return choice
            raise UserError(f"{name} must be one of {', '.join(values)}, not {value!r}.")
        kind = {int: "a whole number", float: "a number"}.get(self.type, self.type.__name__)
        try:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(value)
            value = self.type(value)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(value)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"{name} must be {kind}, not {value!r}.") from None
        if self.minimum is not None and value < self.minimum:
            raise UserError(f"{name} must be at least {self.minimum:g} (got {value:g}).")
        if self.maximum is not None and value > self.maximum:
            raise UserError(f"{name} must be at most {self.maximum:g} (got {value:g}).")
        return value


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UserError(f"{name} must be true or false, not {value!r}.")


def slider(label: str, step: float = 1, info: str = "") -> tuple:
    """The ``widget`` of an :class:`Option` shown as a slider: it spans the option's ``minimum`` to
    ``maximum`` and starts at its ``default`` (one definition: the page accepts what the CLI does)."""
    return ("slider", label, step, info)


def textbox(label: str, info: str = "", placeholder: str = "", lines: int = 1) -> tuple:
    """The ``widget`` of an :class:`Option` shown as a text box."""
    return ("textbox", label, info, placeholder, lines)


class TaskSpec:
    """One task of the app: what it is, which models fit, and its four steps (see the module doc).

    Subclasses set the class attributes and override the steps. ``inputs`` names the API's input
    parameters in order; the API then takes ``model`` and the options, in that order.
    """

    id: str = ""
    title: str = ""
    description: str = ""
    kind: str = ""  # what the engine loads: a transformers pipeline task, or "seq2seq"
    default_model: ModelRef = ModelRef("")
    alternatives: tuple[ModelRef, ...] = ()
    inputs: tuple[str, ...] = ("text",)
    options: tuple[Option, ...] = ()
    #: Each example: values for the inputs, then (optionally) for the ``main`` options, in order.
    examples: Sequence[Sequence[Any]] = ()
    streams: bool = False  # the UI shows partial results as they come (generation)
    #: The tab's shape: "form" (inputs, Run, outputs), "chat" (a conversation), "files" (no tab of its
    #: own: the Batch tab, the API and the CLI).
    ui: str = "form"
    #: The input a file row fills (None: the task does not run on files; ``ROW``: the whole row, a dict
    #: of column -> text); result columns of a file run.
    file_input: str | None = "text"
    #: The kind of file a folder run reads, one file per row ("audio", "image"; None: no folder runs).
    folder_kind: str | None = None
    columns: tuple[str, ...] = ()
    chart_title: str | None = None  # what the Batch chart counts (None: no chart)
    #: Rows a file run prepares at once (None: the engine's window). Files that decode into much
    #: memory (a folder of recordings) take fewer; their pieces still share batches across rows.
    window_rows: int | None = None
    #: The files a result exports as (the tab's downloads, ``pipedesk run TASK --format F``).
    export_formats: tuple[str, ...] = ()

    # --- the contract ------------------------------------------------------------------

    @property
    def reads_rows(self) -> bool:
        """True when a file run hands each whole row (column -> text) to the task, not one column."""
        return self.file_input == ROW

    @property
    def models(self) -> tuple[ModelRef, ...]:
        return (self.default_model, *self.alternatives)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The API's parameters in contract order: the inputs, the model, the options."""
        return (*self.inputs, "model", *(option.name for option in self.options))

    def split_arguments(self, args: Sequence[Any]) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
        """Positional API arguments → (inputs, model, options), missing ones at their defaults."""
        values = dict(zip(self.parameters, args, strict=False))
        inputs = {name: values.get(name) for name in self.inputs}
        options = {option.name: values.get(option.name) for option in self.options}
        return inputs, values.get("model"), options

    def cli_inputs(self, value: str) -> dict[str, Any]:
        """``pipedesk run TASK VALUE``: the inputs ``VALUE`` stands for."""
        return {self.inputs[0]: value}

    def kind_for(self, inputs: dict[str, Any]) -> str:
        """The kind of model these inputs need (classify: text or image)."""
        return self.kind

    def kinds(self) -> tuple[str, ...]:
        """Every kind of model the task takes."""
        return (self.kind,)

    def default_for(self, kind: str) -> ModelRef:
        """The default model for inputs of ``kind``."""
        return self.default_model

    def is_automatic(self, model: str | None) -> bool:
        """True when ``model`` means "the default for these inputs" (nothing, or classify's auto)."""
        return not (model or "").strip()

    # --- the steps -----------------------------------------------------------------------

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Every option coerced and range-checked (missing ones at their defaults)."""
        return {option.name: option.check(options.get(option.name)) for option in self.options}

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        """Check and clean ``inputs`` with no model; raise UserError with a sentence. Files are opened
        through :mod:`desktop.files` within ``limits`` (the owner's, or the smaller visitors')."""
        return inputs

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        raise NotImplementedError

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        raise NotImplementedError

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        raise NotImplementedError

    def exports(self, result: Result) -> dict[str, str]:
        """The result as the text of a file in each of :attr:`export_formats`, by format."""
        return {}

    def partial(self, model: ModelView, prepared: Prepared, text: str) -> Result:
        """A result for the text generated so far (tasks that stream)."""
        raise NotImplementedError

    # --- file runs ---------------------------------------------------------------------

    def file_inputs(self, text: Any, holds: str = "text") -> dict[str, Any]:
        """The inputs a file row stands for: its text, or (``reads_rows``) the row as a dict; ``holds``
        says what a row's cell is ("text", or the path of a file of a kind: "audio", "image")."""
        return {self.file_input or self.inputs[0]: text}

    def columns_read(self, columns: Sequence[str], options: dict[str, Any]) -> list[str]:
        """For a task that ``reads_rows``: the file columns a run with ``options`` reads, checked before
        any row runs (UserError, with the file's columns listed, when one is missing)."""
        return list(columns)

    def result_columns(self, options: dict[str, Any]) -> tuple[str, ...]:
        """The result columns of a file run with these (checked) ``options`` (the same for every run by
        default; Labels: one per label; prompts: one per JSON field)."""
        return self.columns

    def preprocess_many(
        self, model: ModelView, inputs: list[dict[str, Any]], options: dict[str, Any]
    ) -> list[Prepared | UserError]:
        """``preprocess`` for many validated inputs at once (a file window); a refusal is returned in
        place of its input. Tasks override it to tokenize in one call, with the same rules."""
        out: list[Prepared | UserError] = []
        for one in inputs:
            try:
                out.append(self.preprocess(model, one, options))
            except UserError as exc:
                out.append(exc)
        return out

    def pieces_per_input(self, options: dict[str, Any]) -> int:
        """About how many pieces one input makes (Labels: one per label), so a file run prepares
        windows of about as many pieces whatever the task."""
        return 1

    def fit_options(self, model: ModelView, options: dict[str, Any]) -> list[str]:
        """Check the options against the loaded model, before any input runs: UserError for options
        it cannot take, else notes that hold for every input (a label given twice...), which a
        single answer carries and a file run says once."""
        return []

    def row_values(self, result: Result) -> dict[str, Any]:
        """A Result as the result columns of a file row."""
        return {column: result.data.get(column) for column in self.columns}

    def chart_values(self, values: dict[str, Any]) -> list[str]:
        """What one file row adds to the Batch chart (its label, its entity types)."""
        return []

    def extra_cost(self, options: dict[str, Any]) -> int:
        """Tokens a piece costs beyond its own length (what generation adds), for the token budget."""
        return 0

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        """(token budget per batch, most pieces per batch) on ``device``."""
        return (4096, 64) if device == "cpu" else (65536, 1024)

    # --- the single run, for callers that hold a runtime ---------------------------------

    def predict(self, runtime: Any, *args: Any, progress: Any = None, stop: Stop = None) -> Result:
        """Run the task once with the API's positional arguments (``runtime.predict`` does the work)."""
        return runtime.predict(self, *args, progress=progress, stop=stop)

    def stream(self, runtime: Any, *args: Any, progress: Any = None, stop: Stop = None) -> Any:
        """Partial results as they come, then the whole one (``runtime.stream`` does the work)."""
        return runtime.stream(self, *args, progress=progress, stop=stop)

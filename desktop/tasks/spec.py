"""What a task is: data plus pure functions, collected into one registry.

The UI, the CLI and the HTTP API are all generated from :class:`TaskSpec`
objects, so adding a task is adding one module under ``desktop/tasks/``.
Nothing here imports torch or transformers; the model call lives in
``desktop.runtime``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import gradio as gr

    from desktop.runtime import Runtime


@dataclass(frozen=True)
class ModelRef:
    """A Hub model pinned to a revision, with the name people see."""

    repo: str
    revision: str = "main"
    label: str = ""
    size_mb: int = 0  # about how much a download of it weighs (0: unknown), shown before downloading

    @property
    def display(self) -> str:
        return self.label or self.repo


def slider(
    label: str, minimum: float, maximum: float, value: float, step: float = 1, info: str = ""
) -> Callable[[], gr.Component]:
    """A factory for an unrendered gr.Slider, for an :class:`Option`'s ``component``."""

    def build() -> gr.Component:
        import gradio as gr

        return gr.Slider(minimum, maximum, value=value, step=step, label=label, info=info, render=False)

    return build


@dataclass(frozen=True)
class Option:
    """A task parameter after the model (API order), e.g. ``max_new_tokens``."""

    name: str
    default: Any
    help: str
    type: type
    component: Callable[[], gr.Component]
    minimum: float | None = None
    maximum: float | None = None

    @property
    def flag(self) -> str:
        """The command-line flag: ``--max-new-tokens``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, shown_as: str | None = None) -> Any:
        """Coerce ``value`` to the option's type and range, or raise UserError naming the option as
        ``shown_as`` (the CLI passes its flag, ``--max-new-tokens``) or by its parameter name."""
        from desktop.errors import UserError

        name = shown_as or self.name
        if value is None or value == "":
            return self.default
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


@dataclass
class Result:
    """What a task returns: plain data for JSON plus the values its UI outputs show."""

    data: Any
    outputs: tuple[Any, ...]
    text: str
    notes: list[str] = field(default_factory=list)
    model: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """One task of the app: what it is, which models fit, and how to run it.

    ``predict(runtime, *inputs, model, *options)`` takes the API's parameters in
    the public order and returns a :class:`Result`. ``stream`` (optional) takes
    the same parameters and yields partial ``Result`` objects for the UI.
    """

    id: str
    title: str
    description: str
    kind: str  # what runtime loads: a transformers pipeline task or "seq2seq"
    default_model: ModelRef
    alternatives: tuple[ModelRef, ...]
    inputs: Callable[[], list[gr.Component]]
    outputs: Callable[[], list[gr.Component]]
    predict: Callable[..., Result]
    options: tuple[Option, ...] = ()
    examples: Sequence[Sequence[Any]] = ()
    stream: Callable[..., Iterator[Result]] | None = None
    cli_inputs: Callable[[str], tuple[Any, ...]] = lambda value: (value,)
    text_input: bool = True  # a plain-text task the batch engine can run
    kinds_by_input: dict[str, str] = field(default_factory=dict)
    wire: Callable[[list[Any], Any], None] | None = None  # extra UI events (e.g. show/hide inputs)

    @property
    def models(self) -> tuple[ModelRef, ...]:
        return (self.default_model, *self.alternatives)

    def model_choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a dropdown: value is the Hub id."""
        return [(ref.display, ref.repo) for ref in self.models]

    def run(self, runtime: Runtime, *args: Any) -> Result:
        return self.predict(runtime, *args)

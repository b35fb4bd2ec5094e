"""The layout keeps its promises: no import cycles, lower layers never import higher ones, tasks stay
pure, modules stay small. Imports are read from the source (those inside functions count too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "desktop"

#: Each layer may import itself and the layers before it in this list, never one after it.
LAYERS = [
    ("core", ("desktop", "desktop.errors", "desktop.paths", "desktop.settings", "desktop.logs",
              "desktop.assets", "desktop.env", "desktop.fs", "desktop.fmt", "desktop.hf", "desktop.files")),
    ("models", ("desktop.models",)),
    ("tasks", ("desktop.tasks",)),
    ("engine", ("desktop.engine",)),
    ("batch", ("desktop.batch",)),
    ("server", ("desktop.server",)),
    ("share", ("desktop.share",)),
    ("api", ("desktop.api",)),
    ("ui", ("desktop.ui",)),
    ("shell", ("desktop.shell",)),
    ("cli", ("desktop.cli", "desktop.__main__")),
]  # fmt: skip
MAX_LINES = 420


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The desktop modules ``path`` imports, anywhere in it (function bodies included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import mod`` imports pkg.mod; ``from pkg import name`` imports pkg itself.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("desktop") and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, name, known) for name, path in found.items()}


def layer_of(module: str) -> int:
    best, index = "", -1
    for position, (_label, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, position
    return index


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_there_is_no_import_cycle():
    assert cycles(graph()) == []


def test_every_module_belongs_to_a_layer():
    assert [name for name in modules() if layer_of(name) < 0] == []


def test_lower_layers_never_import_higher_ones():
    wrong = [
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for name, targets in graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(name)
    ]
    assert wrong == []


#: What code above the engine may use of it: the front door (client, who asks), file runs' progress
#: data, the model list, the devices found. Never the runtime, its scheduler, batcher or models.
ENGINE_FRONT = {
    "desktop.engine.client",
    "desktop.engine.start",
    "desktop.engine.who",
    "desktop.engine.filerun",
    "desktop.engine.inventory",
    "desktop.engine.device",
}
ABOVE_THE_ENGINE = ("server", "share", "api", "ui", "shell", "cli")


def test_everything_above_the_engine_goes_through_its_front_door():
    above = {label for label, _ in LAYERS if label in ABOVE_THE_ENGINE}
    wrong = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        if LAYERS[layer_of(name)][0] in above
        for target in sorted(targets)
        if target.startswith("desktop.engine") and target != "desktop.engine" and target not in ENGINE_FRONT
    ]
    assert wrong == []


def test_the_checker_sees_cycles_and_imports_inside_functions(tmp_path):
    """The checks above could not fail if the graph missed imports: prove they are seen."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from desktop.ui import app\n    import desktop.engine.runtime\n")
    known = {"desktop.ui", "desktop.ui.app", "desktop.engine", "desktop.engine.runtime"}
    assert imports_of(module, "desktop.tasks.m", known) == {"desktop.ui.app", "desktop.engine.runtime"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_tasks_import_neither_gradio_nor_torch():
    code = (
        "import sys, desktop.tasks\n"
        "heavy = [m for m in ('gradio', 'torch', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_too_long_to_read(name):
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by what each part does"


def test_transformers_names_are_resolved_only_under_the_import_lock():
    """transformers builds its classes lazily and not thread-safely (a warm-up racing a first request
    saw half-built attributes): ``from transformers import X`` or ``import transformers`` anywhere
    but desktop/hf.py would resolve outside the lock. Submodules (``transformers.utils``) are plain
    imports and allowed."""
    bare = []
    for name, path in modules().items():
        if name == "desktop.hf":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            whole = isinstance(node, ast.Import) and any(a.name == "transformers" for a in node.names)
            if whole or (isinstance(node, ast.ImportFrom) and node.module == "transformers"):
                bare.append(f"{name}:{node.lineno}")
    assert bare == []

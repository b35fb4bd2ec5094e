"""The README's two commands are the ones CI runs, and its claims match the code."""

from __future__ import annotations

import re

from desktop.tasks import TASKS
from desktop.ui.handlers import public_parameters
from tests.support import ROOT


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(python3 -m venv .+?)\n```", text)


def test_ci_runs_the_readme_test_command():
    run_command, test_command = _commands()[:2]
    assert run_command.endswith("pipedesk")
    assert test_command.endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()


def test_readme_lists_every_api_with_its_parameters_in_order():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for spec in TASKS.values():
        params = ", ".join(p.name for p in public_parameters(spec))
        assert f"`/{spec.id}` ({params})" in text


def test_torch_is_pinned_in_the_lock_file():
    lock = (ROOT / "requirements-lock.txt").read_text(encoding="utf-8").splitlines()
    assert "torch==2.13.0" in lock

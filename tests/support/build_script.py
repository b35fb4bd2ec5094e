"""build/build.py as a module (it is a script, not a package): loaded once, on the calling thread.

The tests of the build and of the installers, and the ``packaged_app`` fixture, share it.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.support import ROOT

#: Seconds a PyInstaller build may take: about 4 minutes on an idle 2-core machine, far more on a busy one.
BUILD_TIMEOUT = 1200
_NAME = "pipedesk_build"


def build_module() -> ModuleType:
    """build/build.py, imported under the name ``pipedesk_build``."""
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, ROOT / "build" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module

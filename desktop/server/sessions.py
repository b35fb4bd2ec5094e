"""Sessions that cost what they use: Gradio's per-session block configs, built on first use.

Gradio 6 gives every request that carries no session (a script's REST call) a new session, and a
new session computes the config of *every* block of the app up front (for deep links, which only
read them when asked). Pipedesk's app has about 200 blocks: that was 24-40 ms of event-loop time
and ~310 KiB kept per REST call, most of Pipedesk's request overhead (benchmarks/README.md). Here
each session computes a block's config the first time anything reads it; what is read is exactly
what Gradio would have built.

:func:`install` swaps Gradio's ``SessionState`` for a subclass in the modules that create
sessions. It checks the shape it relies on first and leaves Gradio alone (logging why) when a
Gradio release changes it. Runs once, on the thread that starts the first server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

_installed = False
_install_lock = threading.Lock()


class LazyConfigs(dict):
    """``{block id: config}`` that computes a block's config when it is first read."""

    def __init__(self, blocks_config: Any, keys: Iterable[int]) -> None:
        super().__init__()
        self._blocks_config = blocks_config
        self._pending = set(keys)

    def _fill(self, key: Any) -> None:
        if key in self._pending:
            self._pending.discard(key)
            block = self._blocks_config.blocks[key]
            dict.__setitem__(self, key, self._blocks_config.config_for_block(key, [], block))

    def _fill_all(self) -> None:
        for key in list(self._pending):
            self._fill(key)

    def __contains__(self, key: object) -> bool:
        return key in self._pending or dict.__contains__(self, key)

    def __getitem__(self, key: Any) -> Any:
        self._fill(key)
        return dict.__getitem__(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._pending.discard(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._fill(key)
        dict.__delitem__(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._fill(key)
        return dict.get(self, key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        self._fill(key)
        return dict.pop(self, key, *default)

    def __iter__(self) -> Iterator[Any]:
        self._fill_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._pending)

    def keys(self) -> Any:
        self._fill_all()
        return dict.keys(self)

    def values(self) -> Any:
        self._fill_all()
        return dict.values(self)

    def items(self) -> Any:
        self._fill_all()
        return dict.items(self)


class _NoBlocks:
    """What ``SessionState.__init__`` reads of a Blocks, with no blocks to build configs for."""

    def __init__(self, blocks: Any) -> None:
        self.default_config = blocks.default_config
        self.blocks: dict[int, Any] = {}


def _lazy_session_class(base: type) -> type:
    class LazySessionState(base):  # type: ignore[misc, valid-type]
        """Gradio's SessionState, with block configs built on first use."""

        def __init__(self, blocks: Any) -> None:
            super().__init__(_NoBlocks(blocks))
            known = getattr(self, "blocks_config", None)
            if not isinstance(getattr(self, "config_values", None), dict) or known is None:
                super().__init__(blocks)  # a Gradio that builds sessions differently: its own way
                return
            keys = [key for key in known.blocks if key in blocks.blocks]
            self.config_values = LazyConfigs(known, keys)

    return LazySessionState


def install() -> None:
    """Use lazy session configs in this process (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from gradio import blocks as gradio_blocks
        from gradio import route_utils, state_holder

        base = state_holder.SessionState
        lazy = _lazy_session_class(base)
        for module in (state_holder, route_utils, gradio_blocks):
            if getattr(module, "SessionState", None) is base:
                module.SessionState = lazy
        _installed = True
        log.debug("Gradio sessions build block configs on first use")

"""The owner's Local API: its switch (off by default), its key and its address, kept in the settings
file (readable by its owner only: :mod:`desktop.settings`).

Read at every API request (:func:`owner_access`), so switching it off or making a new key takes
effect at once, on this computer's server and on the LAN one. While it is on, the window's server
asks for the port it had when the API was switched on, so the address other programs were given
stays the same across launches (another one when that port is taken). Any thread.
"""

from __future__ import annotations

import secrets
import socket

from desktop import settings
from desktop.server.api_door import ApiAccess

KEY_PREFIX = "pd-"


def new_key() -> str:
    """A fresh API key: ``pd-`` and 43 random URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def is_on() -> bool:
    return settings.load().local_api


def current_key() -> str:
    """The key programs send (empty until the Local API was first switched on)."""
    return settings.load().api_key


def turn_on(port: int | None) -> str:
    """Switch the Local API on (keeping ``port`` as its address) and return its key (made the first time)."""
    saved = settings.load()
    key = saved.api_key or new_key()
    settings.update(local_api=True, api_key=key, api_port=port or saved.api_port)
    return key


def turn_off() -> None:
    """Switch the Local API off: API requests are refused from now on (the key is kept)."""
    settings.update(local_api=False)


def renew() -> str:
    """Replace the key: programs that have the old one are refused from now on."""
    return settings.update(api_key=new_key()).api_key


def owner_access() -> ApiAccess:
    """Who may use the owner's API: programs that send the key, while the switch is on."""
    return ApiAccess(accepted=lambda: (current_key(),), enabled=is_on)


def preferred_port(host: str) -> int | None:
    """The Local API's saved port while it is on and free on ``host``; None otherwise."""
    saved = settings.load()
    if not (saved.local_api and saved.api_port):
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host if host not in ("", "0.0.0.0") else "127.0.0.1", saved.api_port))
        except OSError:
            return None
    return saved.api_port

"""Pipedesk: Hugging Face models on your own computer, offline, in a desktop window.

``__version__`` comes from the installed package's metadata, which pyproject.toml's
``version`` defines (the one definition; the packaged app ships that metadata too).
"""

from importlib import metadata

from desktop.env import configure_environment

try:
    __version__ = metadata.version("pipedesk")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

configure_environment()

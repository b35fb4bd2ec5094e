"""Pipedesk: Hugging Face models on your own computer, offline, in a desktop window."""

from desktop.env import configure_environment

__version__ = "0.1.0"

configure_environment()

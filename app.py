"""Hugging Face Spaces entry point (Gradio SDK): serves Pipedesk headless.

Spaces run ``python app.py`` with GRADIO_SERVER_NAME=0.0.0.0 and port 7860;
both are read here so the same file also runs anywhere else.
"""

import os
import sys

from desktop.cli import main

if __name__ == "__main__":
    host = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
    port = os.environ.get("GRADIO_SERVER_PORT", "7860")
    sys.exit(main(["serve", "--host", host, "--port", port]))

"""Hugging Face Spaces entry point (Gradio SDK): serves Pipedesk's public app.

Spaces run ``python app.py`` with GRADIO_SERVER_NAME=0.0.0.0 and GRADIO_SERVER_PORT=7860;
both are read here so the same file also runs anywhere else. It always serves the visitors'
app (``--public``): the tasks on the models named in $PIPEDESK_MODELS (downloaded at start-up),
no model management, a sign-in when $PIPEDESK_AUTH (a Space secret, USER:PASSWORD) is set.
"""

import os
import sys

from desktop.cli import main

if __name__ == "__main__":
    host = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
    port = os.environ.get("GRADIO_SERVER_PORT", "7860")
    sys.exit(main(["serve", "--public", "--host", host, "--port", port]))

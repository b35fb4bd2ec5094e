"""The Gradio interface, generated from the task registry."""

"""Gradio pages: the editor and the chat pages of published apps."""

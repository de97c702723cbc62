"""Conversations of published chat apps: their threads and exchanges, memory, logs and feedback."""

"""Celery workers: the app, thin tasks, the warm pipeline cache and the reaper."""

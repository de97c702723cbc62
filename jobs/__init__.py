"""Batch jobs and schedules: lifecycle, sources, dispatch, schedules, their models."""

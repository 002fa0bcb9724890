"""Celery workers: label shards of a run through an OpenAI-compatible endpoint."""

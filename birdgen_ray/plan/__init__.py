"""Plan: the prompt table a run generates from (see schema.py)."""

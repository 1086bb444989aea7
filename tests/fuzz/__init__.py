"""Differential fuzzing of lazygrad against NumPy (see graph.py, strategies.py, worker.py)."""

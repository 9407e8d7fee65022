"""`benchmarks/reference_limit.py`'s parts: the accept transaction, and the sweep of it."""

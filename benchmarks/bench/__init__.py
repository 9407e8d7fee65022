"""`benchmarks/run.py`'s parts: the plan, the gateway's processes, the scenarios, the results."""

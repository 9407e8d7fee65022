"""`benchmarks/chaos.py`'s parts: the cluster, operators, workload, faults and checks."""

"""What `benchmarks/run.py` and `benchmarks/chaos.py` both need: ports, processes, servers."""

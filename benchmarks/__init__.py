"""Benchmarks run by hand against the real parts (``python -m benchmarks.<name>``); results in results/."""

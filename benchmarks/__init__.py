"""The ValidateToken benchmark: `make bench` runs `python -m benchmarks.run`."""

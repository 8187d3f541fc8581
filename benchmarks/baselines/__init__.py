"""Hand-written PyTorch baselines the benchmarks compare archdsl-built modules against."""

"""Spectron benchmarks: speed at 10k/100k memories and recall quality on LoCoMo (`python -m benchmarks.run`)."""

"""Benchmarks (run as scripts: `python bench/NAME.py`); tests import bench.tiny_model from here."""

"""Straightforward per-reading Python implementations of the rule families: the oracle that the
property tests and `bench/evaluator.py` compare the vectorised families against."""

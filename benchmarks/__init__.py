"""Benchmarks: flowmagic against two hand-written schedulers.

Run ``python -m benchmarks.run`` (``--quick`` for a smoke run). Only the
standard library and flowmagic are needed.
"""

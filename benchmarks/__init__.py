"""Benchmarks: flowmagic against two hand-written schedulers.

Run ``python -m benchmarks.run`` (``--quick`` for a smoke run). Only the
standard library and flowmagic are needed, and Dask distributed for the Dask
executor's rows (``flowmagic[dask]``; without it they say "not measured").
"""

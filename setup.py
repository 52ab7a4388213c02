"""The native parts: ingest/_records.c, the Records.json fast path, and embeddings/_gemm.c, the half-precision
products of the query forward. Everything else is in pyproject.toml.

optional=True: on a machine that cannot compile them the install still succeeds; google_records falls back to
its numpy + polars fast path (same columns, slower) and the query forward to float32 numpy products."""

from setuptools import Extension, setup

_FLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
setup(ext_modules=[Extension("ingest._records", ["ingest/_records.c"], optional=True, extra_compile_args=_FLAGS),
                   Extension("embeddings._gemm", ["embeddings/_gemm.c"], optional=True, extra_compile_args=_FLAGS)])

"""The one native part: ingest/_records.c, the Records.json fast path. Everything else is in pyproject.toml.

optional=True: on a machine that cannot compile it the install still succeeds, and google_records falls back to
its numpy + polars fast path (same columns, slower)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ingest._records", ["ingest/_records.c"], optional=True,
                             extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"])])

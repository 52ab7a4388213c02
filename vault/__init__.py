"""The encrypted vault: the only package that imports duckdb and owns every byte at rest."""

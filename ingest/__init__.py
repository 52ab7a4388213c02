"""Ingest: real exports into the vault."""

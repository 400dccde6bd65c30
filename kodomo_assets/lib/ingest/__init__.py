"""Ingest: the departments' exports read, decoded, typed and stored (the source assets' stage)."""

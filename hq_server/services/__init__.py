"""Use cases: each reads and writes HQ tables for one job and owns its transaction shape."""

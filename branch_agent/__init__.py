"""Branch agent: offline-first capture and sync to HQ."""

__version__ = "0.1.0"

"""Contracts shared by the HQ server and the branch agent (no IO here)."""

"""Pure domain arithmetic: no IO, no framework imports."""

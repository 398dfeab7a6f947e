r"""Thin binaries; run as `python -m tools.NAME --help`."""

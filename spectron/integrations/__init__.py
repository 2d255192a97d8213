"""Adapters that put Spectron where agent frameworks expect memory (each needs its extra)."""

"""Checkpoint files: safe loading, strict weight loading, atomic writes."""

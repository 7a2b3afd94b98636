"""Synthetic Community Archive corpora."""

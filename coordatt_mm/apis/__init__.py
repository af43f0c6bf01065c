"""Inference helpers: robust image reading and folder inference."""

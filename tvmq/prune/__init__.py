"""Pruning: structured (whole channels) removal that makes the compiled model smaller."""

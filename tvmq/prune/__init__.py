"""Pruning: remove channels or weights, fine-tune, deploy smaller and faster."""

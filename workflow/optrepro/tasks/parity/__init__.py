"""Sparse parity with a 2-layer MLP (shared/tasks/parity.md)."""

"""Turning histories into (input, target) examples, one module per training task."""

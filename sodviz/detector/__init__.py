"""DETR-family detectors: families, loading, attention capture and every forward pass."""

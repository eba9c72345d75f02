"""Scoring detections: size buckets, COCO / AI-TOD AP, ground truth, whole datasets, error tables."""

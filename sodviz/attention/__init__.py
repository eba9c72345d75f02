"""Cross-attention as maps on the image, every entropy, and attention inside a box (numpy only)."""

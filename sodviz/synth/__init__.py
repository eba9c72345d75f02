"""The generated small-object benchmark: terrain, scenes with exact boxes, COCO datasets."""

"""A whole dataset analysed once: per object, detection and image rows, stored in DuckDB over Parquet."""

"""Serving the app to others: where it may read and write (access), closed sessions let go
(sessions), the process's memory budget and freed memory handed back (memory)."""

"""Jobs: the database-backed queue (`queue.py`), the HTTP pull worker (`worker.py`) and periodic maintenance."""

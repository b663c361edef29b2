"""HTTP layer only: the legacy OpenScan Cloud protocol, REST v1, signed upload/download links and the worker
API. All rules live in `domain/` and `jobs/queue.py`; these modules translate HTTP to calls and back."""

from openscancloud.api.app import create_app

__all__ = ["create_app"]

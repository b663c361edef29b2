"""Blob storage for upload parts, the assembled input zip and the result zip.

`Storage` is the interface (a local-files implementation today, S3 later); every key is built from
server-generated project IDs and integer part indexes — no user-supplied string ever becomes a path."""

from openscancloud.storage.base import PartTooLarge, Storage, StoredPart
from openscancloud.storage.local import LocalStorage

__all__ = ["LocalStorage", "PartTooLarge", "Storage", "StoredPart"]

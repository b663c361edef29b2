"""Blob storage for upload parts, the assembled input zip and the result zip.

`Storage` is the interface; `LocalStorage` keeps files under `<data_dir>/storage`, `S3Storage` keeps objects in
an S3-compatible bucket (`OPENSCAN_STORAGE_URL=s3://bucket/prefix`). Every key is built from server-generated
project IDs and integer part indexes — no user-supplied string ever becomes a path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from openscancloud.storage.base import ObjectStore, PartTooLarge, Storage, StoredPart, supports_presign
from openscancloud.storage.local import LocalStorage

if TYPE_CHECKING:
    from openscancloud.settings import Settings


def make_storage(settings: Settings) -> Storage:
    """The storage the settings ask for: S3 when `storage_url` is an s3:// URL, else the local data dir."""
    if settings.storage_url:
        from openscancloud.storage.s3 import S3Config, S3Storage, parse_storage_url

        bucket, prefix = parse_storage_url(settings.storage_url)
        cfg = S3Config(
            bucket=bucket, prefix=prefix, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
            access_key_id=settings.s3_access_key_id, secret_access_key=settings.s3_secret_access_key,
            presign_endpoint_url=settings.s3_presign_endpoint_url, create_bucket=settings.s3_create_bucket,
        )
        return S3Storage(cfg, settings.data_dir / "scratch")
    return LocalStorage(settings.storage_dir)


__all__ = ["LocalStorage", "ObjectStore", "PartTooLarge", "Storage", "StoredPart", "make_storage", "supports_presign"]

"""S3-compatible object storage (AWS S3, MinIO, Ceph RGW, Garage, moto's server...), through boto3.

Keys (all built from server-generated IDs and integers; nothing a user typed becomes a key):

    <prefix>projects/<project_id>/parts/<i>.part            a complete upload part
    <prefix>projects/<project_id>/parts/<i>.chunks/<start>  a `Content-Range` piece of an unfinished part
    <prefix>projects/<project_id>/parts/g<gen>-<i>.upload   a part a client PUT by presigned URL (not yet adopted)
    <prefix>projects/<project_id>/input.zip                 the joined input
    <prefix>projects/<project_id>/result.zip                the worker's result

Why it is safe when processes die: a streamed part is written as an S3 *multipart upload* that only becomes an
object when `CompleteMultipartUpload` succeeds, i.e. after the last byte arrived and was counted against the part
limit. A killed API process leaves an incomplete multipart upload (invisible, never taken as a part), which
`abort_stale_uploads()` (run by maintenance) or a bucket lifecycle rule removes. Small bodies (< one chunk) use a
single `PutObject`, which is atomic as well.

Blocking boto3 calls run in worker threads so the event loop keeps serving other requests while a part streams.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, BinaryIO, Iterator, Sequence

from openscancloud.storage.base import OffsetMismatch, PartMismatch, PartTooLarge, StoredPart

_ID = re.compile(r"[0-9a-f]{32}")
CHUNK = 8 << 20  # multipart piece size: ≥ 5 MiB (S3's minimum for all but the last piece)


@dataclass(frozen=True)
class S3Config:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    presign_endpoint_url: str | None = None  # the S3 address clients can reach, if different from endpoint_url
    create_bucket: bool = False


def _check_parts(joined: Path, expected: Sequence[tuple[int, str]]) -> None:
    """Compare the joined file piece by piece with the recorded (size, sha256) of each part."""
    total = sum(size for size, _ in expected)
    if joined.stat().st_size != total:
        raise PartMismatch(len(expected) - 1)
    with open(joined, "rb") as fh:
        for index, (size, sha256) in enumerate(expected):
            digest, left = hashlib.sha256(), size
            while left > 0:
                block = fh.read(min(left, 1 << 20))
                if not block:
                    raise PartMismatch(index)
                digest.update(block)
                left -= len(block)
            if digest.hexdigest() != sha256:
                raise PartMismatch(index)


def parse_storage_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → ("bucket", "some/prefix/")."""
    m = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(/.*)?", url.strip())
    if not m:
        raise ValueError(f"storage URL {url!r} must look like s3://bucket or s3://bucket/prefix")
    prefix = (m.group(2) or "").strip("/")
    return m.group(1), f"{prefix}/" if prefix else ""


def _client(cfg: S3Config, endpoint: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=cfg.region, aws_access_key_id=cfg.access_key_id,
        aws_secret_access_key=cfg.secret_access_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
    )


class S3Storage:
    def __init__(self, cfg: S3Config, scratch_dir: Path) -> None:
        self.cfg = cfg
        self.bucket = cfg.bucket
        self.s3 = _client(cfg, cfg.endpoint_url)
        self.presigner = _client(cfg, cfg.presign_endpoint_url) if cfg.presign_endpoint_url else self.s3
        self.scratch = Path(scratch_dir)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._assembled: dict[str, Path] = {}  # project → local copy of input.zip made by assemble_input
        self._lock = threading.Lock()
        if cfg.create_bucket:
            self._ensure_bucket()
        self._sweep_scratch()

    def _sweep_scratch(self) -> None:
        """Local copies of inputs (`input-<pid>-...`) left by a process killed during `startProject`: removed
        when that process no longer exists (several processes may share the scratch dir)."""
        import psutil

        for path in self.scratch.glob("input-*-*.zip"):
            pid = path.name.split("-")[1]
            if pid.isdigit() and int(pid) != os.getpid() and not psutil.pid_exists(int(pid)):
                path.unlink(missing_ok=True)

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.s3.create_bucket(Bucket=self.bucket)
            except ClientError as exc:  # another process created it first
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    # --- keys -----------------------------------------------------------------------------------------------
    def _dir(self, project_id: str) -> str:
        if not _ID.fullmatch(project_id):
            raise ValueError("invalid project id")
        return f"{self.cfg.prefix}projects/{project_id}/"

    def _part_key(self, project_id: str, index: int) -> str:
        return f"{self._dir(project_id)}parts/{int(index)}.part"

    def _chunks_prefix(self, project_id: str, index: int) -> str:
        return f"{self._dir(project_id)}parts/{int(index)}.chunks/"

    def presigned_part_key(self, project_id: str, index: int, generation: int) -> str:
        return f"{self._dir(project_id)}parts/g{int(generation)}-{int(index)}.upload"

    # --- small helpers --------------------------------------------------------------------------------------
    def _size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _keys(self, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(page.get("Contents", []))
        return out

    def _delete_prefix(self, prefix: str) -> None:
        keys = [o["Key"] for o in self._keys(prefix)]
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=self.bucket,
                                   Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
        for upload in self._multipart_uploads(prefix):
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    def _multipart_uploads(self, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in self.s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(page.get("Uploads", []))
        return out

    # --- streaming into an object ---------------------------------------------------------------------------
    async def _stream_to_object(self, key: str, chunks: AsyncIterator[bytes], limit: int, digest: Any) -> int:
        """Copy an async byte stream into `key`: one PutObject if it fits one chunk, else a multipart upload
        completed only after the last byte. Raises PartTooLarge (nothing stored) past `limit`."""
        writer = _MultipartWriter(self.s3, self.bucket, key, digest)
        buf = bytearray()
        written = 0
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                if written + len(chunk) > limit:
                    raise PartTooLarge()
                written += len(chunk)
                buf += chunk
                if len(buf) >= CHUNK:
                    data = bytes(buf)
                    buf.clear()
                    await asyncio.to_thread(writer.write, data)
            await asyncio.to_thread(writer.finish, bytes(buf))
        except BaseException:
            await asyncio.shield(asyncio.to_thread(writer.abort))
            raise
        return written

    def _copy_keys_into(self, sources: list[str], key: str, digest: Any, local: BinaryIO | None = None) -> int:
        """Concatenate objects into `key` (streamed through this process; also into `local` if given)."""
        writer = _MultipartWriter(self.s3, self.bucket, key, digest)
        buf = bytearray()
        total = 0
        try:
            for src in sources:
                body = self.s3.get_object(Bucket=self.bucket, Key=src)["Body"]
                for block in body.iter_chunks(1 << 20):
                    total += len(block)
                    if local is not None:
                        local.write(block)
                    buf += block
                    if len(buf) >= CHUNK:
                        writer.write(bytes(buf))
                        buf.clear()
            writer.finish(bytes(buf))
        except BaseException:
            writer.abort()
            raise
        return total

    # --- parts ----------------------------------------------------------------------------------------------
    async def put_part(self, project_id: str, index: int, chunks: AsyncIterator[bytes], limit: int) -> StoredPart:
        digest = hashlib.sha256()
        size = await self._stream_to_object(self._part_key(project_id, index), chunks, limit, digest)
        await asyncio.to_thread(self._delete_prefix, self._chunks_prefix(project_id, index))
        return StoredPart(index=index, size=size, sha256=digest.hexdigest())

    def _chunk_list(self, project_id: str, index: int) -> list[tuple[int, int, str]]:
        """(start, size, key) of the stored pieces, sorted."""
        pieces = []
        for obj in self._keys(self._chunks_prefix(project_id, index)):
            name = obj["Key"].rsplit("/", 1)[-1]
            if name.isdigit():
                pieces.append((int(name), int(obj["Size"]), obj["Key"]))
        return sorted(pieces)

    @staticmethod
    def _contiguous(pieces: list[tuple[int, int, str]]) -> tuple[int, list[str]]:
        have, keys = 0, []
        for start, size, key in pieces:
            if start != have:
                break
            have += size
            keys.append(key)
        return have, keys

    async def append_part(
        self, project_id: str, index: int, start: int, total: int, chunks: AsyncIterator[bytes], limit: int
    ) -> tuple[int, StoredPart | None]:
        """A `Content-Range` piece becomes its own object `<start>`; when the pieces reach TOTAL they are joined
        into the part. A piece that broke off is not stored (HEAD reports the offset before it)."""
        prefix = self._chunks_prefix(project_id, index)
        if start == 0:
            await asyncio.to_thread(self._delete_prefix, prefix)
        pieces = await asyncio.to_thread(self._chunk_list, project_id, index)
        have, keys = self._contiguous(pieces)
        if start != have:
            raise OffsetMismatch(have)
        if total > limit:
            raise PartTooLarge()
        written = await self._stream_to_object(f"{prefix}{start:015d}", chunks, min(limit, total) - have,
                                               hashlib.sha256())
        offset = have + written
        if offset < total:
            return offset, None
        digest = hashlib.sha256()
        keys.append(f"{prefix}{start:015d}")
        size = await asyncio.to_thread(self._copy_keys_into, keys, self._part_key(project_id, index), digest)
        await asyncio.to_thread(self._delete_prefix, prefix)
        return offset, StoredPart(index=index, size=size, sha256=digest.hexdigest())

    def part_offset(self, project_id: str, index: int) -> tuple[int, bool]:
        pieces = self._chunk_list(project_id, index)
        if pieces:
            return self._contiguous(pieces)[0], False
        size = self._size(self._part_key(project_id, index))
        return (size, True) if size is not None else (0, False)

    def delete_parts(self, project_id: str) -> None:
        self._delete_prefix(f"{self._dir(project_id)}parts/")

    # --- presigned PUT of a part (new clients upload straight to S3) ---------------------------------------
    def presign_part_put(self, project_id: str, index: int, generation: int, seconds: int) -> str:
        return self.presigner.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self.presigned_part_key(project_id, index, generation)},
            ExpiresIn=max(1, int(seconds)), HttpMethod="PUT",
        )

    def adopt_presigned_part(self, project_id: str, index: int, generation: int, limit: int) -> StoredPart | None:
        """Turn a part PUT by presigned URL into the part: checks the size, computes its sha256 (S3's ETag is
        not a sha256), moves it into place. None when nothing was uploaded."""
        src = self.presigned_part_key(project_id, index, generation)
        size = self._size(src)
        if size is None:
            return None
        if size > limit:
            self.s3.delete_object(Bucket=self.bucket, Key=src)
            raise PartTooLarge()
        digest = hashlib.sha256()
        body = self.s3.get_object(Bucket=self.bucket, Key=src)["Body"]
        for block in body.iter_chunks(1 << 20):
            digest.update(block)
        target = self._part_key(project_id, index)
        if size <= 5 * 1024**3:
            self.s3.copy_object(Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": src})
        else:  # pragma: no cover - parts are far below 5 GB
            self._copy_keys_into([src], target, hashlib.sha256())
        self.s3.delete_object(Bucket=self.bucket, Key=src)
        self._delete_prefix(self._chunks_prefix(project_id, index))
        return StoredPart(index=index, size=size, sha256=digest.hexdigest())

    # --- input ----------------------------------------------------------------------------------------------
    def assemble_input(self, project_id: str, parts: int,
                       expected: Sequence[tuple[int, str]] | None = None) -> int:
        """Join the parts into input.zip in the bucket; a local copy is kept for the zip check that follows
        (`local_input`) so the bytes are not downloaded twice."""
        fd, tmp = tempfile.mkstemp(prefix=f"input-{os.getpid()}-{project_id}-", suffix=".zip", dir=self.scratch)
        try:
            with os.fdopen(fd, "wb") as local:
                size = self._copy_keys_into([self._part_key(project_id, i) for i in range(parts)],
                                            f"{self._dir(project_id)}input.zip", hashlib.sha256(), local)
            if expected is not None:
                _check_parts(Path(tmp), expected)
        except BaseException:
            if expected is not None:
                self.delete_input(project_id)
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            old = self._assembled.pop(project_id, None)
            self._assembled[project_id] = Path(tmp)
        if old is not None:
            old.unlink(missing_ok=True)
        return size

    @contextmanager
    def local_input(self, project_id: str) -> Iterator[Path]:
        with self._lock:
            path = self._assembled.pop(project_id, None)
        if path is None:
            fd, tmp = tempfile.mkstemp(prefix=f"input-{os.getpid()}-{project_id}-", suffix=".zip", dir=self.scratch)
            os.close(fd)
            path = Path(tmp)
            try:
                self.s3.download_file(self.bucket, f"{self._dir(project_id)}input.zip", str(path))
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def open_input(self, project_id: str) -> BinaryIO:
        key = f"{self._dir(project_id)}input.zip"
        return io.BufferedReader(_RangeReader(self.s3, self.bucket, key, self._size(key) or 0), 1 << 20)

    def input_size(self, project_id: str) -> int | None:
        return self._size(f"{self._dir(project_id)}input.zip")

    def delete_input(self, project_id: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=f"{self._dir(project_id)}input.zip")
        with self._lock:
            path = self._assembled.pop(project_id, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def presign_input_get(self, project_id: str, seconds: int) -> str:
        return self.presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": f"{self._dir(project_id)}input.zip"},
            ExpiresIn=max(1, int(seconds)),
        )

    # --- result ---------------------------------------------------------------------------------------------
    async def put_result(self, project_id: str, chunks: AsyncIterator[bytes], limit: int) -> StoredPart:
        digest = hashlib.sha256()
        size = await self._stream_to_object(f"{self._dir(project_id)}result.zip", chunks, limit, digest)
        return StoredPart(index=0, size=size, sha256=digest.hexdigest())

    def result_size(self, project_id: str) -> int | None:
        return self._size(f"{self._dir(project_id)}result.zip")

    def open_result(self, project_id: str) -> BinaryIO:
        key = f"{self._dir(project_id)}result.zip"
        size = self._size(key)
        if size is None:
            raise FileNotFoundError(key)
        return io.BufferedReader(_RangeReader(self.s3, self.bucket, key, size), 1 << 20)

    def read_result(self, project_id: str, start: int, end: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        body = self.s3.get_object(Bucket=self.bucket, Key=f"{self._dir(project_id)}result.zip",
                                  Range=f"bytes={start}-{end}")["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def presign_result_get(self, project_id: str, filename: str, seconds: int) -> str:
        return self.presigner.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": f"{self._dir(project_id)}result.zip",
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                    "ResponseContentType": "application/zip"},
            ExpiresIn=max(1, int(seconds)),
        )

    def delete_result(self, project_id: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=f"{self._dir(project_id)}result.zip")

    # --- everything -----------------------------------------------------------------------------------------
    def delete_project(self, project_id: str) -> None:
        self._delete_prefix(self._dir(project_id))
        with self._lock:
            path = self._assembled.pop(project_id, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def abort_stale_uploads(self, older_than_seconds: float) -> int:
        """Abort multipart uploads left by processes that died mid-stream (maintenance calls this)."""
        limit = datetime.now(timezone.utc) - timedelta(seconds=older_than_seconds)
        count = 0
        for upload in self._multipart_uploads(f"{self.cfg.prefix}projects/"):
            initiated = upload.get("Initiated")
            if initiated is not None and initiated.tzinfo is None:
                initiated = initiated.replace(tzinfo=timezone.utc)
            if initiated is None or initiated < limit:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                count += 1
        return count

    def all_keys(self) -> list[str]:
        """Every object under the prefix (for audits such as the crash test's orphan check)."""
        return [o["Key"] for o in self._keys(f"{self.cfg.prefix}projects/")]

    def pending_multipart_uploads(self) -> list[str]:
        return [u["Key"] for u in self._multipart_uploads(f"{self.cfg.prefix}projects/")]


class _MultipartWriter:
    """Feeds ≥5 MiB pieces to an S3 multipart upload, created lazily: a body smaller than one piece becomes a
    single PutObject. Nothing is visible under `key` until `finish()` succeeds."""

    def __init__(self, s3: Any, bucket: str, key: str, digest: Any) -> None:
        self.s3, self.bucket, self.key, self.digest = s3, bucket, key, digest
        self.upload_id: str | None = None
        self.etags: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        if self.upload_id is None:
            self.upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
        n = len(self.etags) + 1
        r = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=n, Body=data)
        self.etags.append({"PartNumber": n, "ETag": r["ETag"]})

    def finish(self, last: bytes) -> None:
        if self.upload_id is None:
            self.digest.update(last)
            self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=last)
            return
        if last or not self.etags:
            self.write(last)
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                          MultipartUpload={"Parts": self.etags})
        self.upload_id = None

    def abort(self) -> None:
        if self.upload_id is not None:
            try:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
            except Exception:  # the maintenance sweep removes it later
                pass
            self.upload_id = None


class _RangeReader(io.RawIOBase):
    """A seekable read-only file over an S3 object (ranged GETs), e.g. for `zipfile` on a result."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int) -> None:
        self.s3, self.bucket, self.key, self.size = s3, bucket, key, size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, b: Any) -> int:
        if self.pos >= self.size or len(b) == 0:
            return 0
        end = min(self.pos + len(b), self.size) - 1
        data = self.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={self.pos}-{end}")["Body"].read()
        n = len(data)
        b[:n] = data
        self.pos += n
        return n


__all__ = ["S3Config", "S3Storage", "parse_storage_url"]

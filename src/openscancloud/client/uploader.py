"""Uploading one part so that a dropped connection loses at most one chunk.

The part link speaks a small resumable protocol (agreed with the server):

* `HEAD link` → `Upload-Offset: n` (bytes the server holds of this part) and `Upload-Complete: ?1|?0`;
* `POST link` with `Content-Range: bytes START-END/TOTAL` appends a chunk at START, which must equal the server's
  offset (otherwise 409 `{"offset": n}`), and the part is complete when END+1 == TOTAL;
* a plain `POST link` (no Content-Range) replaces the whole part — what older servers and the firmware do.

The state machine: ask the offset, send chunk after chunk from there, and after any failure back off, ask the
offset again and continue. Servers without HEAD/Content-Range get whole-part uploads, retried from the start.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from openscancloud.client.archive import PartSpec, read_range
from openscancloud.client.errors import ClientError, LinkExpired, UploadCancelled, UploadIncomplete
from openscancloud.client.transport import (
    RETRYABLE_STATUS,
    RetryPolicy,
    describe_transport_error,
    error_from_response,
)

DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
_BLOCK = 64 * 1024


class _Retryable(Exception):
    """Internal: this try failed in a way that is worth another try."""


@dataclass
class PartResult:
    index: int
    size: int
    sha256: str | None
    skipped: bool
    reply: dict[str, Any]


class PartUploader:
    """Uploads parts over one `httpx.Client`; reports bytes through `on_progress(part_bytes_done)`."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        retry: RetryPolicy,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        cancel: threading.Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str], None] | None = None,
        ranged: bool = True,
    ) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk size must be positive")
        self.http = http
        self.retry = retry
        self.chunk_size = chunk_size
        self.cancel = cancel
        self.sleep = sleep
        self.on_retry = on_retry
        self.ranged = ranged  # False once a server showed it cannot do ranged uploads

    # -- the pieces -------------------------------------------------------------------------------------------

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise UploadCancelled("The upload was cancelled; upload again to continue where it stopped.")

    def _body(self, path: Path, offset: int, length: int, on_bytes: Callable[[int], None]) -> Iterator[bytes]:
        sent = 0
        for block in read_range(path, offset, length, _BLOCK):
            self._check_cancel()
            yield block
            sent += len(block)
            on_bytes(sent)

    def probe(self, url: str) -> tuple[int, bool] | None:
        """(offset, complete) from `HEAD url`, or None when the server does not do ranged uploads."""
        try:
            response = self.http.head(url)
        except httpx.TransportError as exc:
            raise _Retryable(describe_transport_error(exc)) from None
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code in (403, 410):
            raise error_from_response(response, action="upload the part") if response.status_code == 410 else \
                LinkExpired("The server rejected the upload link (HTTP 403); it may have expired or been reset.",
                            status_code=403)
        offset = response.headers.get("upload-offset")
        if response.status_code >= 400 or offset is None:
            return None
        try:
            return int(offset), response.headers.get("upload-complete", "").strip() == "?1"
        except ValueError:
            return None

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _fail_for(self, response: httpx.Response) -> None:
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code == 403:
            raise LinkExpired("The server rejected the upload link (HTTP 403); it may have expired or been reset.",
                              status_code=403)
        raise error_from_response(response, action="upload the part")

    # -- the state machine ------------------------------------------------------------------------------------

    def upload(self, url: str, path: Path, spec: PartSpec, on_progress: Callable[[int], None]) -> PartResult:
        """Make the server hold part `spec` completely; resume from its offset after every failure."""
        failures = 0
        offset: int | None = None
        restarts = 0
        while True:
            self._check_cancel()
            try:
                if self.ranged and offset is None:
                    probed = self.probe(url)
                    if probed is None:
                        self.ranged = False
                    else:
                        offset, complete = probed
                        if complete and offset == spec.size:
                            on_progress(spec.size)
                            return PartResult(spec.index, spec.size, None, True, {})
                        if offset > spec.size or complete:
                            offset = 0  # the server holds something else: start this part again
                        on_progress(offset)
                if not self.ranged:
                    reply = self._send_whole(url, path, spec, on_progress)
                else:
                    assert offset is not None
                    offset, reply = self._send_chunk(url, path, spec, offset, on_progress)
                    failures = 0  # progress was made: a flaky line may keep going
                    if reply is None:
                        continue
                sha = reply.get("sha256")
                if sha and sha != spec.sha256:
                    restarts += 1
                    if restarts > 1:
                        raise UploadIncomplete(
                            f"Part {spec.index + 1} arrived damaged twice (checksum mismatch); "
                            "check the network and upload again."
                        )
                    offset = 0
                    continue
                on_progress(spec.size)
                return PartResult(spec.index, spec.size, sha, False, reply)
            except _Retryable as exc:
                failures += 1
                if failures >= self.retry.attempts:
                    raise UploadIncomplete(
                        f"Uploading part {spec.index + 1} failed {failures} times in a row ({exc}); "
                        "run the same upload again to continue where it stopped."
                    ) from None
                delay = self.retry.delay(failures)
                if self.on_retry:
                    self.on_retry(f"Part {spec.index + 1}: {exc}; trying again in {delay:.0f} s.")
                if self.cancel is not None:
                    self.cancel.wait(delay)  # a cancel does not wait out the backoff
                else:
                    self.sleep(delay)
                offset = None  # ask the server what it has now

    def _send_whole(self, url: str, path: Path, spec: PartSpec, on_progress: Callable[[int], None]) -> dict:
        on_progress(0)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(spec.size)}
        try:
            response = self.http.post(url, content=self._body(path, spec.offset, spec.size, on_progress),
                                      headers=headers)
        except httpx.TransportError as exc:
            raise _Retryable(describe_transport_error(exc)) from None
        if response.status_code >= 300:
            self._fail_for(response)
        return self._json(response)

    def _send_chunk(
        self, url: str, path: Path, spec: PartSpec, offset: int, on_progress: Callable[[int], None]
    ) -> tuple[int, dict | None]:
        """Send one chunk from `offset`; return (new offset, final reply or None while the part is unfinished)."""
        length = min(self.chunk_size, spec.size - offset)
        end = offset + length - 1
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
            "Content-Range": f"bytes {offset}-{end}/{spec.size}",
        }
        body = self._body(path, spec.offset + offset, length, lambda sent: on_progress(offset + sent))
        try:
            response = self.http.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise _Retryable(describe_transport_error(exc)) from None
        if response.status_code == 409:
            server_offset = self._json(response).get("offset")
            if isinstance(server_offset, int) and 0 <= server_offset <= spec.size:
                on_progress(server_offset)
                return server_offset, None
            raise _Retryable("the server's offset did not match")
        if response.status_code in (400, 405, 411, 416, 501) and offset == 0:
            # A server that does not understand Content-Range: fall back to whole-part uploads.
            self.ranged = False
            raise _Retryable(f"ranged upload not supported (HTTP {response.status_code})")
        if response.status_code >= 300:
            self._fail_for(response)
        reply = self._json(response)
        if end + 1 >= spec.size:
            return spec.size, reply
        new_offset = reply.get("offset", end + 1)
        return (int(new_offset) if isinstance(new_offset, int) else end + 1), None


__all__ = ["PartUploader", "PartResult", "DEFAULT_CHUNK_SIZE", "ClientError"]

"""Request-body streaming helpers shared by the signed upload endpoints.

One legacy uploader posts `requests.post(url, files={'file': f}, headers={'Content-type':
'application/octet-stream'})`: a multipart body under an octet-stream header. So the multipart envelope is
recognised from the Content-Type *or* from the body's first line (`--<boundary>` followed by part headers),
and then only the bytes of the `file` field are passed on — still streaming, never the whole body in memory.
"""

from __future__ import annotations

import re
from typing import AsyncIterator

from python_multipart.multipart import MultipartParser

from openscancloud.domain.errors import InvalidInput, TooLarge

MAX_OTHER_FIELDS = 64 * 1024  # bytes of all non-file fields together (uploaders send none or a few small ones)
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=?]{1,70}")
_SNIFF = 512


def _sniff_boundary(head: bytes) -> bytes | None:
    if not head.startswith(b"--"):
        return None
    line, sep, rest = head.partition(b"\r\n")
    if not sep or not _BOUNDARY.fullmatch(line[2:]):
        return None
    if not rest[:20].lower().startswith(b"content-"):
        return None
    return line[2:]


def _header_boundary(content_type: str) -> bytes | None:
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    return m.group(1).encode() if m else None


async def file_bytes(stream: AsyncIterator[bytes], content_type: str) -> AsyncIterator[bytes]:
    """The uploaded file's bytes: the raw body, or the `file` field of a multipart envelope."""
    head = b""
    async for chunk in stream:
        head += chunk
        if len(head) >= _SNIFF:
            break
    boundary = _header_boundary(content_type) or _sniff_boundary(head)
    if boundary is None:
        if head:
            yield head
        async for chunk in stream:
            yield chunk
        return

    out: list[bytes] = []
    state = {"field": b"", "value": b"", "disposition": b"", "take": False, "taken": False, "done": False}
    other = [0]

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        if state["field"].lower() == b"content-disposition":
            state["disposition"] = state["value"]
        state["field"] = state["value"] = b""

    def on_headers_finished() -> None:
        disp = state["disposition"]
        name = re.search(rb'name="([^"]*)"', disp)
        is_file = (name and name.group(1) == b"file") or b"filename=" in disp
        state["take"] = bool(is_file) and not state["taken"]
        state["disposition"] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["take"]:
            out.append(data[start:end])
        else:
            other[0] += end - start

    def on_part_end() -> None:
        if state["take"]:
            state["taken"], state["take"] = True, False

    parser = MultipartParser(boundary, {
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data, "on_part_end": on_part_end,
    })

    def feed(data: bytes) -> None:
        try:
            parser.write(data)
        except Exception as exc:  # python-multipart raises its own parse errors
            raise InvalidInput(f"The multipart upload body could not be read ({exc}).", code="bad_multipart") from None
        if other[0] > MAX_OTHER_FIELDS:
            raise TooLarge(f"The multipart upload carries more than {MAX_OTHER_FIELDS} bytes besides the 'file' "
                           "field.", code="multipart_fields_too_large")

    feed(head)
    for piece in out:
        yield piece
    out.clear()
    async for chunk in stream:
        feed(chunk)
        for piece in out:
            yield piece
        out.clear()
    parser.finalize()
    for piece in out:
        yield piece
    if not state["taken"]:
        raise InvalidInput("The multipart upload has no complete 'file' field.", code="bad_multipart")

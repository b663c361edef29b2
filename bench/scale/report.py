"""Writes one `### ...` block inside the `## Scale-out` section of docs/benchmarks.md, leaving the rest of the
file (other helpers' sections) untouched."""

from __future__ import annotations

import re
from pathlib import Path

SECTION = "## Scale-out"
INTRO = ("Issue 5: several API replicas behind nginx, PostgreSQL, S3 (moto server mode), pull workers. "
         "Figures written by `bench/crash.py` and `bench/load.py`; the machine is shared with other work, "
         "so timings are noisy.")


def update_block(doc: Path, heading: str, body: str) -> None:
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{heading}\n\n{body.strip()}\n"
    if SECTION not in text.splitlines():
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{INTRO}\n\n{block}"
        doc.write_text(text)
        return
    start = text.index(f"{SECTION}\n") if f"{SECTION}\n" in text else text.index(SECTION)
    m = re.search(r"^## (?!#)", text[start + len(SECTION):], flags=re.M)
    end = start + len(SECTION) + m.start() if m else len(text)
    section = text[start:end]
    if heading in section.splitlines():
        h = section.index(heading)
        nxt = re.search(r"^#{2,3} ", section[h + len(heading):], flags=re.M)
        stop = h + len(heading) + nxt.start() if nxt else len(section)
        section = section[:h] + block + ("\n" if nxt else "") + section[stop:]
    else:
        section = section.rstrip("\n") + "\n\n" + block + ("\n" if end < len(text) else "")
    doc.write_text(text[:start] + section + text[end:])

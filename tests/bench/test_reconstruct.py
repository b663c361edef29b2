"""The bench script's own plumbing: reading report.json layouts, the docs section it rewrites, the memory sampler
of a child process tree, and skipping absent photo sets with a clear message."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest


@pytest.fixture(scope="module")
def bench(bench_module):
    return bench_module("reconstruct")


def test_stage_times_are_read_from_either_report_layout(bench):
    as_dict = {"stages": {"sparse": {"seconds": 12.5, "peak_rss_mb": 300}, "dense": {"time_s": 40}}}
    as_list = {"stages": [{"name": "sparse", "seconds": 12.5}, {"name": "dense", "wall_seconds": 40.0}]}
    assert bench.stage_seconds(as_dict) == {"sparse": 12.5, "dense": 40.0}
    assert bench.stage_seconds(as_list) == {"sparse": 12.5, "dense": 40.0}
    assert bench.image_counts({"images": {"total": 48, "registered": 47}}) == (48, 47)


def test_docs_section_is_replaced_not_duplicated(bench, tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nintro stays\n")
    bench.update_docs("### Preset `preview` — first", "preview", docs)
    bench.update_docs("### Preset `standard` — only", "standard", docs)
    bench.update_docs("### Preset `preview` — second", "preview", docs)
    text = docs.read_text()
    assert "intro stays" in text
    assert "first" not in text and text.count("— second") == 1 and text.count("— only") == 1
    assert text.index("— second") < text.index("— only")  # replaced in place


def test_peak_rss_covers_the_whole_process_tree(bench):
    # a parent that starts a child holding ~200 MB: the sampler must see the sum
    code = ("import subprocess, sys, time; "
            "c = subprocess.Popen([sys.executable, '-c', 'b = bytearray(200 * 2**20); import time; time.sleep(1.5)']);"
            "c.wait()")
    proc = subprocess.Popen([sys.executable, "-c", code])
    with bench.RssSampler(proc.pid, interval=0.05) as sampler:
        proc.wait()
        time.sleep(0.1)
    assert sampler.peak_bytes > 200 * 2**20


def test_absent_sets_are_skipped_with_a_message(bench, tmp_path, capsys):
    (tmp_path / "only_readme").mkdir()
    code = bench.main(["--datasets", str(tmp_path), "--sets", "nope,only_readme", "--colmap", "skip",
                       "--out", str(tmp_path / "out")])
    assert code == 2
    out = capsys.readouterr().out
    assert "skipping nope" in out and "None of the requested photo sets is present" in out

"""The bench script's own plumbing: reading report.json layouts, the docs section it rewrites, the memory sampler
of a child process tree, and skipping absent photo sets with a clear message."""

from __future__ import annotations

import json
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


def test_saved_results_read_back_to_the_same_tables(bench, tmp_path):
    run = bench.EngineRun(exit_code=0, wall_seconds=300.0, peak_rss_bytes=2 * 2**30, out_dir=str(tmp_path),
                          load_average=(1.5, 2.5), stage_seconds={"sparse": 100.0, "dense": 150.0},
                          images_total=48, images_registered=48)
    score = {"thresholds": [{"tau_fraction": 0.005, "tau_m": 7e-4, "accuracy": 0.99, "completeness": 0.93,
                             "fscore": 0.959}, {"tau_fraction": 0.01, "tau_m": 1.4e-3, "accuracy": 1.0,
                                                "completeness": 0.95, "fscore": 0.974}],
             "accuracy_median_m": 1.4e-4, "alignment": {"rms_residual_m": 1e-4}}
    result = bench.SetResult(name="synth_bust", quality="standard", runs=[run], metrics=score,
                             colmap={"total_seconds": 700.0, "images_registered": 48, "images_total": 48})
    payload = bench.results_payload([result], "python bench/reconstruct.py", bench.machine_info(), "today",
                                    "standard")
    assert payload["sets"][0]["colmap_over_ours"] == pytest.approx(7.0)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(payload))
    _, loaded = bench.load_results(path)
    assert bench.table_rows(loaded) == bench.table_rows([result])
    section = bench.markdown_section(loaded, "cmd", payload["machine"], "today", "standard")
    assert "| synth_bust | standard | 48/48 | 100.0 | 150.0 | 300.0 | 2.00 |" in section
    assert "0.959" in section and "7.00×" in section and "1.5–2.5" in section

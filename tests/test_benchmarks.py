"""The benchmark runs end to end on the tiny stand-in and writes every figure.

Only the keys and their signs are checked here: timings belong in the benchmark, not in tests.
"""

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import ROOT

RATIOS_AND_TIMES = (
    "train_speedup_vs_seed_recipe",
    "train_ratio_vs_bare_loop",
    "train_peak_rss_ratio_vs_bare_loop",
    "adapter_switch_s",
    "base_reload_s",
    "first_attach_s",
    "generate_ratio_vs_plain",
    "first_token_s",
    "startup_ratio_vs_minimal_textual",
)


@pytest.mark.slow
def test_benchmark_writes_every_figure(tiny_model, tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--model", str(tiny_model), "--tiny-test", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())

    for key in RATIOS_AND_TIMES:
        assert isinstance(figures[key], float), key
        assert figures[key] > 0, key
    # On the tiny model, fixed costs dominate, so the exponent may even be negative.
    assert math.isfinite(figures["train_scaling_exponent"])
    assert "train_speedup_vs_seed_recipe" in result.stdout
    assert figures["mode"] == "tiny-test"

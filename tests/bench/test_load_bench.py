"""The pure parts of bench/load_bench.py: its percentiles, its summary of latencies, its
nginx config (checked by nginx itself when installed) and its CPU reading. The whole run
is a benchmark, not a test."""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load_bench.py"


@pytest.fixture(scope="module")
def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("load_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["load_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_percentiles_agree_with_the_standard_library(load_bench: ModuleType) -> None:
    values = [0.9, 0.1, 0.5, 2.5, 0.3, 1.7, 0.2, 0.8, 1.1, 4.0, 0.6]
    # statistics.quantiles' "inclusive" method is the same linear interpolation.
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    assert load_bench.percentile(values, 50) == pytest.approx(statistics.median(values))
    assert load_bench.percentile(values, 95) == pytest.approx(cuts[94])
    assert load_bench.percentile(values, 0) == min(values)
    assert load_bench.percentile(values, 100) == max(values)
    assert load_bench.percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        load_bench.percentile([], 50)
    with pytest.raises(ValueError):
        load_bench.percentile(values, 101)


def test_summary_of_latencies(load_bench: ModuleType) -> None:
    summary = load_bench.summarize([float(i) for i in range(1, 21)])
    assert summary == {"n": 20, "p50": 10.5, "p95": 19.05, "max": 20.0}
    assert load_bench.summarize([]) == {"n": 0}


def test_nginx_config_has_every_replica_and_keeps_its_files_in_the_prefix(
    load_bench: ModuleType, tmp_path: Path
) -> None:
    conf = load_bench.nginx_config([8101, 8102], 8099, tmp_path)
    assert "server 127.0.0.1:8101;" in conf and "server 127.0.0.1:8102;" in conf
    assert "listen 127.0.0.1:8099;" in conf
    assert "proxy_pass http://evalsign;" in conf and "daemon off;" in conf
    for line in conf.splitlines():
        if line.strip().split(" ")[0].endswith(("_path", "pid", "error_log")):
            assert str(tmp_path) in line, line
    assert conf.count("{") == conf.count("}")
    with pytest.raises(ValueError):
        load_bench.nginx_config([], 8099, tmp_path)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_config(load_bench: ModuleType, tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(load_bench.nginx_config([8101, 8102], 8099, tmp_path))
    checked = subprocess.run(
        ["nginx", "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


def test_cpu_seconds_of_a_process_grow_with_its_work(load_bench: ModuleType) -> None:
    before = load_bench.process_cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    after = load_bench.process_cpu_seconds(os.getpid())
    assert 0.2 <= after - before <= 5.0


def test_resident_memory_of_a_process_grows_with_what_it_holds(load_bench: ModuleType) -> None:
    before = load_bench.process_rss_bytes(os.getpid())
    held = bytearray(b"\x01" * (64 * 2**20))  # written, so resident
    after = load_bench.process_rss_bytes(os.getpid())
    assert after - before >= 60 * 2**20
    del held

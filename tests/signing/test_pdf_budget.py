"""Hostile PDFs against the reading budgets: each is refused naming its limit (or read, for
a large stream, which is no budget's business), within the time and memory the issue
allows, measured in a forked child per file so one file's peak is not another's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from signing.pades import PdfRejected, check_pdf
from tests.signing.hostile_pdfs import CORPUS, plain

pytestmark = pytest.mark.slow

PEAK_MB = 300
SECONDS = 30

# Forks one child per file after the imports; each child reports its outcome, the time it
# took and how far its peak resident set rose above what it started with.
_MEASURE = r"""
import json, os, resource, sys, time
from signing import pades

for path in sys.argv[1:]:
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        start_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        result = {"outcome": "ok", "limit": None}
        try:
            pades.check_pdf(__import__("pathlib").Path(path))
            pades.validate(path, [])
        except pades.PdfRejected as exc:
            result = {"outcome": "rejected", "limit": exc.limit, "detail": str(exc)[:200]}
        except BaseException as exc:
            result = {"outcome": "error", "limit": None, "detail": repr(exc)[:200]}
        result["seconds"] = time.monotonic() - started
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["peak_mb"] = (peak_kb - start_kb) / 1024
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.wait()
    print(json.dumps({"path": path, **json.loads(b"".join(chunks) or b"{}")}), flush=True)
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    folder = tmp_path_factory.mktemp("hostile")
    paths = []
    for name, (build, _) in CORPUS.items():
        path = folder / f"{name}.pdf"
        path.write_bytes(build())
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *paths],
        capture_output=True,
        text=True,
        timeout=SECONDS * len(paths),
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    results = [json.loads(line) for line in done.stdout.splitlines()]
    return {Path(str(r["path"])).stem: r for r in results}


@pytest.mark.parametrize("name", list(CORPUS))
def test_a_hostile_pdf_is_refused_in_bounded_time_and_memory(
    measured: dict[str, dict[str, object]], name: str
) -> None:
    result = measured[name]
    expected = CORPUS[name][1]
    if expected == "ok":
        assert result["outcome"] == "ok", result
    else:
        assert result["outcome"] == "rejected", result
        if expected is not None:
            assert result["limit"] == expected, result
    assert float(str(result["seconds"])) < SECONDS, result
    assert float(str(result["peak_mb"])) < PEAK_MB, result


def test_an_ordinary_pdf_passes_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "plain.pdf"
    path.write_bytes(plain())
    assert check_pdf(path).page_count == 1


def test_the_refusal_names_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "deep.pdf"
    path.write_bytes(CORPUS["deep_nesting"][0]())
    with pytest.raises(PdfRejected, match="nested deeper than 64") as refused:
        check_pdf(path)
    assert refused.value.limit == "max_depth"

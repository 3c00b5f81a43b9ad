"""qbb-replay report: one self-contained HTML file, checked in headless Chromium."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from qbb_replay import (
    DETAIL_LIMIT,
    Options,
    analyze_sources,
    render_report,
    resolve_sources,
    run_stats,
)
from replay_support.browser import chromium, load
from replay_support.cli import invoke, shaped
from replay_support.runs import Run


@pytest.fixture(scope="module")
def report(pristine_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("report") / "run.html"
    result = invoke("report", pristine_run.logs, "-o", output, "--json")
    # The killed attempt's unsealed log failed verification.
    assert result.exit_code == 1, result.output
    document = shaped(result, "report")
    assert document["bytes"] == output.stat().st_size
    assert document["logs"] == len(pristine_run.log_paths)
    return output


def test_the_report_holds_stats_and_every_quantum_to_look_at(
    report: Path, pristine_run: Run
) -> None:
    text = report.read_text()
    # Self-contained: no script, style or image is fetched from anywhere.
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", text)
    assert "Quanta per task over time" in text
    assert "Time and memory per task" in text
    for task in ("isr", "coadd"):
        assert f"<td>{task}</td>" in text
    # The failed attempt, the killed attempt and the coadd with missing and unused inputs.
    for qid in (*pristine_run.failed, *pristine_run.killed):
        assert f"<code>{qid}</code>" in text
    assert "missing inputs" in text
    assert "unused inputs" in text
    assert "ArtifactNotFoundError" in text


_READY = "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2"
_PROBE = """JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot')).map(e => {
  const r = e.getBoundingClientRect();
  return {width: r.width, height: r.height, svgs: e.querySelectorAll('svg.main-svg').length,
          marks: e.querySelectorAll('.bars path, .boxlayer path, .point').length};
}))"""


@pytest.mark.skipif(
    chromium() is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (.ci/run installs it)",
)
def test_the_report_renders_in_chromium_with_no_network(report: Path) -> None:
    import json

    page = load(report, _PROBE, _READY)
    assert page.errors == []
    assert page.requests == []
    charts = json.loads(page.measured)
    assert len(charts) == 2
    for chart in charts:
        assert chart["width"] > 100
        assert chart["height"] > 100
        assert chart["svgs"] >= 1
        assert chart["marks"] > 0
    image = Image.open(io.BytesIO(page.screenshot)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 20
    white = max(count for count, colour in colours if colour == (255, 255, 255))
    assert white < 0.97 * image.width * image.height


@pytest.mark.skipif(
    chromium() is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (.ci/run installs it)",
)
def test_the_browser_check_sees_errors_and_fetches(tmp_path: Path) -> None:
    # The check above proves something only if it can fail.
    page_path = tmp_path / "bad.html"
    page_path.write_text(
        "<html><body><script src='https://cdn.example.org/x.js'></script>"
        "<script>console.error('boom'); window.done = true;</script></body></html>"
    )
    page = load(page_path, "1", "window.done === true")
    assert any("boom" in e for e in page.errors)
    assert page.requests == ["https://cdn.example.org/x.js"]


def test_a_large_run_gets_one_timeline_lane_per_task(pristine_run: Run) -> None:
    sources = resolve_sources([str(pristine_run.logs)])
    results = [r for batch in analyze_sources(sources, Options(fold=True)) for r in batch]
    many = [
        r.model_copy(update={"location": f"{r.location}#{i}"}) for i in range(7) for r in results
    ]
    assert len(many) > DETAIL_LIMIT // 4
    small = render_report(results, run_stats(results), {})
    large = render_report(many, run_stats(many), {})
    assert '"y":["isr ' in small.replace(", ", ",")
    assert '"y":["isr","isr"' in large.replace(", ", ",")

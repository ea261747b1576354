"""The report in a real browser: headless Chromium (Debian's ``chromium``) through Playwright.

Playwright drives the system Chromium (``executable_path``); it never downloads a browser.
The tests skip when Chromium or the ``playwright`` package is missing (``.ci/run`` installs
Chromium with apt-get when it can). The screenshot is kept in ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dse.pipeline.collect import collect_provenance
from dse.report import build_sections, render_html

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium() -> str:
    for candidate in (os.environ.get("DSE_CHROMIUM"), shutil.which("chromium"),
                      "/usr/bin/chromium", shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("Chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    executable = _chromium()
    with sync_api.sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        except sync_api.Error as exc:
            pytest.skip(f"Chromium at {executable} does not start: {exc}")
        yield b
        b.close()


def _report(tmp: Path, break_figure: bool = False) -> Path:
    from test_report import synthetic_report_data

    data = synthetic_report_data(tmp)
    if break_figure:  # learning curves fail; keep one other section (fewer figures to draw)
        data.history = {k: v.drop(columns=["loss"]) for k, v in data.history.items()}
        data.calibrations.clear()
        data.device_cards.clear()
        data.tasks.clear()
        data.inject.clear()
        data.estimates.clear()
        data.studies.clear()
    prov = collect_provenance(data, tmp / "config.yaml")
    out = tmp / "report.html"
    out.write_text(render_html(build_sections(data, prov, dpi=60), prov), encoding="utf-8")
    return out


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, requests


def test_every_figure_renders_and_no_section_failed(browser, tmp_path: Path) -> None:
    page, requests = _open(browser, _report(tmp_path))
    images = page.evaluate("Array.from(document.images).map(i => "
                           "({alt: i.alt, complete: i.complete, w: i.naturalWidth, "
                           "h: i.naturalHeight}))")
    assert len(images) == 13  # the synthetic data's figures (tests/test_report.py)
    bad = [i for i in images if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]
    assert not bad, bad
    assert page.locator(".failed").count() == 0
    assert page.locator(".banner").count() == 0
    sections = page.locator("section.report-section")
    from test_report import ALL_SECTIONS  # the synthetic data's sections

    assert sections.count() == len(ALL_SECTIONS)
    for k in range(sections.count()):  # every section is laid out with content
        box = sections.nth(k).bounding_box()
        assert box is not None and box["height"] > 80
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # no network
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()


def test_a_failed_figure_is_visible_in_the_page(browser, tmp_path: Path) -> None:
    page, _ = _open(browser, _report(tmp_path, break_figure=True))
    failed = page.locator(".failed")
    assert failed.count() == 1 and failed.first.is_visible()
    assert "Learning curves" in failed.first.inner_text()
    assert page.locator("#training.section-failed").count() == 1
    assert page.locator(".banner").is_visible()
    images = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert len(images) == 2 and min(images) > 0  # the pulses and mapping figures still render
    page.close()

"""The ``report`` stage: one self-contained HTML page over every stage's outputs.

* :mod:`dse.report.io` — :func:`load_results` reads the outputs of a config's experiments, chips,
  devices and studies (and Snakemake's benchmark files) into :class:`ReportData`.
* :mod:`dse.report.provenance` — :func:`collect_provenance`: config hash, code version, git
  commit, packages, seeds, card files, run time per stage.
* :mod:`dse.report.figures` — seaborn/matplotlib figures from tidy tables.
* :mod:`dse.report.build` — :func:`build_sections` (sections in pipeline order; stages without
  outputs left out; a failing figure becomes a visible message) and :func:`render_html`
  (Jinja2 template ``templates/report.html.j2``; figures embedded as base64 PNG, no network
  needed to view the page).

:func:`make_report` chains them: ``dse report --config C --results results/ --out R.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dse.report.build import DEFAULT_DPI, DEFAULT_TITLE, Section, build_sections, render_html
from dse.report.io import ReportData, load_results
from dse.report.provenance import Provenance, collect_provenance

__all__ = ["DEFAULT_DPI", "DEFAULT_TITLE", "Provenance", "ReportData", "Section",
           "build_sections", "collect_provenance", "load_results", "make_report",
           "render_html"]


def make_report(config: dict[str, Any], config_file: str | Path, results: str | Path,
                benchmarks: str | Path | None = None) -> tuple[str, list[Section]]:
    """The report's HTML and its sections, for a validated ``config`` (read from
    ``config_file``) over the stage outputs under ``results``."""
    settings = config.get("report") or {}
    data = load_results(config, results, benchmarks)
    prov = collect_provenance(data, config_file)
    sections = build_sections(data, prov, dpi=int(settings.get("dpi", DEFAULT_DPI)))
    html = render_html(sections, prov, title=str(settings.get("title", DEFAULT_TITLE)))
    return html, sections

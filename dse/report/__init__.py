"""The ``report`` stage: one self-contained HTML page over every stage's outputs.

* :mod:`dse.report.data` — :class:`ReportData`, the stage outputs of one config as plain
  tables (read by the wiring, :func:`dse.pipeline.collect.load_results`).
* :mod:`dse.report.provenance` — :class:`Provenance` and its tables (seeds, cards, run times).
* :mod:`dse.report.figures` — seaborn/matplotlib figures from tidy tables (the co-design front
  and hypervolume figures included).
* :mod:`dse.report.build` — :func:`build_sections` (sections in pipeline order; stages without
  outputs left out; a failing figure becomes a visible message) and :func:`render_html`
  (Jinja2 template ``templates/report.html.j2``; figures embedded as base64 PNG, no network
  needed to view the page).

:func:`make_report` chains them: ``dse report --config C --results results/ --out R.html``
(through :func:`dse.pipeline.recipes.write_report`).
"""

from __future__ import annotations

from dse.report.build import DEFAULT_DPI, DEFAULT_TITLE, Section, build_sections, render_html
from dse.report.data import ReportData
from dse.report.provenance import Provenance

__all__ = ["DEFAULT_DPI", "DEFAULT_TITLE", "Provenance", "ReportData", "Section",
           "build_sections", "make_report", "render_html"]


def make_report(data: ReportData, prov: Provenance) -> tuple[str, list[Section]]:
    """The report's HTML and its sections, from the stage outputs ``data`` of its (validated)
    config and the run's provenance."""
    settings = data.config.get("report") or {}
    sections = build_sections(data, prov, dpi=int(settings.get("dpi", DEFAULT_DPI)))
    html = render_html(sections, prov, title=str(settings.get("title", DEFAULT_TITLE)))
    return html, sections

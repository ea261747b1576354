"""Assemble the report: sections in pipeline order, each a list of figures, tables and notes.

:func:`build_sections` turns :class:`~dse.report.data.ReportData` into :class:`Section` s; a
section whose stage produced nothing is left out (never shown empty). Each figure is rendered
on its own: a figure that raises becomes a visible failure item in its section (CSS class
``failed``) and an error in the log, and the rest of the report is still written.
:func:`render_html` fills the Jinja2 template shipped in ``dse/report/templates/``.
"""

from __future__ import annotations

import logging

from dse.report.data import ReportData
from dse.report.endurance import endurance_section
from dse.report.items import Item, Section
from dse.report.provenance import Provenance
from dse.report.sections import SECTIONS, provenance_section
from dse.report.summary import summary_section

log = logging.getLogger(__name__)

DEFAULT_TITLE = "dse design-space exploration report"
# the endurance section (its own module) right after the training ones
_AFTER = next(i for i, f in enumerate(SECTIONS) if f.__name__ == "_continual") + 1
ORDER = (*SECTIONS[:_AFTER], endurance_section, *SECTIONS[_AFTER:])
DEFAULT_DPI = 100


def build_sections(data: ReportData, prov: Provenance, dpi: int = DEFAULT_DPI) -> list[Section]:
    """The summary of the studies first, then the report's sections in pipeline order (stages
    without outputs left out)."""
    sections = []
    for make in (summary_section, *ORDER):
        try:
            section = make(data, dpi)
        except Exception as exc:  # a bug in one section must not lose the others
            log.exception("report section %s failed", make.__name__)
            section = Section(make.__name__.strip("_"), make.__name__.strip("_").capitalize(),
                              "")
            section.items.append(Item("failed", "", f"This section could not be built: "
                                      f"{type(exc).__name__}: {exc}"))
        if section is not None:
            sections.append(section)
    sections.append(provenance_section(prov, dpi))
    return sections


def render_html(sections: list[Section], prov: Provenance, title: str = DEFAULT_TITLE) -> str:
    """The self-contained HTML page (template ``templates/report.html.j2``)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("dse.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    failed = [s.title for s in sections if s.failed]
    return env.get_template("report.html.j2").render(title=title, sections=sections, prov=prov,
                                                      failed=failed)

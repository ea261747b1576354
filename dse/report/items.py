"""The building blocks of a report section: items (figures, tables, text) and the builder that
renders each on its own, so a figure that raises becomes a visible failure item in its section
(CSS class ``failed``) and an error in the log, and the rest of the report is still written."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import seaborn as sns

from dse.report import figures as F

log = logging.getLogger(__name__)


@dataclass
class Item:
    """One element of a section: ``figure`` (``content`` = data URI), ``table`` (HTML),
    ``text`` (HTML), ``pre`` (plain text) or ``failed`` (``content`` = the message)."""

    kind: str
    title: str
    content: str
    caption: str = ""


@dataclass
class Section:
    id: str
    title: str
    intro: str
    items: list[Item] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(i.kind == "failed" for i in self.items)

    @property
    def figures(self) -> int:
        return sum(i.kind == "figure" for i in self.items)


class Builder:
    def __init__(self, section: Section, dpi: int) -> None:
        self.section = section
        self.dpi = dpi

    def figure(self, title: str, make: Callable[[], Any], caption: str = "") -> None:
        """Render ``make()`` (a Figure, or PNG bytes written by a stage) into the section."""
        try:
            with sns.axes_style("whitegrid"):
                out = make()
            uri = F.png_to_data_uri(out) if isinstance(out, bytes) else \
                F.figure_to_data_uri(out, self.dpi)
        except Exception as exc:  # a broken figure must not take the report down
            log.exception("report section '%s': figure '%s' failed", self.section.title, title)
            self.failed(f"Figure \u201c{title}\u201d could not be rendered: "
                        f"{type(exc).__name__}: {exc}")
            return
        self.section.items.append(Item("figure", title, uri, caption))

    def table(self, title: str, df: pd.DataFrame | Callable[[], pd.DataFrame],
              caption: str = "", formats: dict[str, str] | None = None) -> None:
        """Add a table (a DataFrame, or a function making one: a failure is shown)."""
        try:
            content = table_html(df() if callable(df) else df, formats)
        except Exception as exc:
            log.exception("report section '%s': table '%s' failed", self.section.title, title)
            self.failed(f"Table \u201c{title}\u201d could not be rendered: "
                        f"{type(exc).__name__}: {exc}")
            return
        self.section.items.append(Item("table", title, content, caption))

    def text(self, content_html: str, title: str = "") -> None:
        self.section.items.append(Item("text", title, content_html))

    def failed(self, message: str) -> None:
        self.section.items.append(Item("failed", "", message))


def _fmt(v: Any, spec: str | None) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if spec and isinstance(v, int | float) and not isinstance(v, bool):
        return format(v, spec)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table_html(df: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """A compact HTML table (values escaped; floats to 4 significant digits unless
    ``formats`` gives a format spec for the column)."""
    formats = formats or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = "".join(f"<td>{html.escape(_fmt(v, formats.get(c)))}</td>"
                        for c, v in zip(df.columns, row, strict=True))
        body.append(f"<tr>{cells}</tr>")
    return (f'<table class="data"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')

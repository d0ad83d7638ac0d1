"""Read voipscope's report.html back for tests: tables by id, notes, every element and
attribute, with a check that the markup nests properly (html.parser is lenient)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

VOID = {"meta", "br", "link", "img", "input", "hr", "rect", "line", "path", "circle"}


@dataclass
class Report:
    tables: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    elements: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    text_by_class: dict[str, list[str]] = field(default_factory=dict)
    script_text: list[str] = field(default_factory=list)
    text: str = ""

    def column(self, table: str, cls: str) -> list[str]:
        return [row[cls] for row in self.tables.get(table, [])]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.report = Report()
        self.stack: list[str] = []
        self.table: str | None = None
        self.row: dict[str, str] | None = None
        self.cell: str | None = None
        self.classed: list[tuple[str, int]] = []  # (class, depth) of open classed elements
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.report.elements.append((tag, a))
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "table":
            self.table = a.get("id") or ""
            self.report.tables[self.table] = []
        elif tag == "tr" and self.table is not None and "tbody" in self.stack:
            self.row = {}
        elif tag == "td" and self.row is not None:
            self.cell = a.get("class") or ""
            self.row[self.cell] = ""
        for cls in (a.get("class") or "").split():
            self.classed.append((cls, len(self.stack)))
            self.report.text_by_class.setdefault(cls, []).append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.report.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-3:]}"
        depth = len(self.stack)
        self.classed = [(c, d) for c, d in self.classed if d < depth]
        self.stack.pop()
        if tag == "td":
            self.cell = None
        elif tag == "tr" and self.row is not None:
            assert self.table is not None
            self.report.tables[self.table].append(self.row)
            self.row = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self.stack and self.stack[-1] == "script":
            self.report.script_text.append(data)
        if self.row is not None and self.cell is not None:
            self.row[self.cell] += data
        for cls, _ in self.classed:
            self.report.text_by_class[cls][-1] += data


def read_report(path: Path) -> Report:
    reader = _Reader()
    reader.feed(path.read_text(encoding="utf-8"))
    reader.close()
    assert not reader.stack, f"unclosed elements {reader.stack}"
    reader.report.text = "".join(reader.texts)
    return reader.report

"""HTML pieces of the report: tables whose cells are escaped unless built here, and
the note that says how many rows a capped table left in which file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from voipscope.output.report.text import MAX_CELL_CHARS, Safe, esc, num

NOTE_CHARS = 1000  # our own sentences; record text inside them is clipped before


def tag(
    name: str, content: object, cls: str | None = None, limit: int = MAX_CELL_CHARS, **attrs: object
) -> Safe:
    """``<name class=cls ...>content</name>``; text content (clipped to ``limit``) and
    attributes escaped; :class:`Safe` content as it is."""
    attr = f' class="{esc(cls)}"' if cls else ""
    attr += "".join(f' {k.rstrip("_")}="{esc(v)}"' for k, v in attrs.items() if v is not None)
    return Safe(f"<{name}{attr}>{esc(content, limit)}</{name}>")


def join(parts: Iterable[object], sep: str = "") -> Safe:
    """Parts (escaped and clipped unless Safe) joined by ``sep``, which is markup."""
    return Safe(sep.join(esc(p) for p in parts))


def table(
    table_id: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterable[Sequence[object]],
    empty: str = "none",
) -> Safe:
    """A table with ``id=table_id``; ``columns`` are (class of the cells, header text).
    Each cell is text (escaped, clipped) or :class:`Safe` markup built by this package."""
    head = join(tag("th", title, cls) for cls, title in columns)
    body = [
        Safe(
            "<tr>"
            + join(tag("td", cell, cls) for (cls, _), cell in zip(columns, row, strict=True))
            + "</tr>"
        )
        for row in rows
    ]
    if not body:
        return tag("p", empty, "muted")
    return Safe(
        f'<div class="scroll"><table id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def more(shown: int, total: int, noun: str, where: str, order: str) -> Safe:
    """The caption of a capped table: which rows are here, where the others are."""
    if total <= 1:
        return Safe("")
    if total <= shown:
        return tag("p", f"All {num(total)} {noun}, {order}.", "note", NOTE_CHARS)
    return tag(
        "p",
        f"Showing the first {num(shown)} of {num(total)} {noun} ({order}); the other "
        f"{num(total - shown)} are in {where}.",
        "note capped",
        NOTE_CHARS,
    )


def small(text: object) -> Safe:
    return tag("small", text)


def lines(*parts: object) -> Safe:
    """Cell content on several lines (each part escaped unless Safe)."""
    return join((p for p in parts if p not in (None, "")), "<br>")


def bullet_list(items: Sequence[object], limit: int, rest_note: str) -> Safe:
    """At most ``limit`` items, and how many more there are in which file."""
    if not items:
        return Safe("—")
    shown = [tag("li", item) for item in items[:limit]]
    if len(items) > limit:
        shown.append(tag("li", f"+{len(items) - limit} more {rest_note}", "muted"))
    return Safe(f"<ul>{join(shown)}</ul>")

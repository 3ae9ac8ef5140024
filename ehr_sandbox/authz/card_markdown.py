"""A CDS card's ``detail`` (GitHub-flavoured markdown in the spec) rendered as an EHR does.

markdown-it-py renders CommonMark with raw HTML off; nh3 then keeps only an allow-list of
tags and ``http(s)`` links (opened in a new tab, ``noopener``), so a hostile card stays inert.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

TAGS = {
    "p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "blockquote",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render(detail: str) -> Markup:
    """Safe HTML for a card's markdown ``detail``."""
    html = _MARKDOWN.render(detail)
    clean = nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return Markup(clean)  # noqa: S704 - sanitized by nh3 just above

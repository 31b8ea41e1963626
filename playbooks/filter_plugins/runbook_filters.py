"""Jinja filter: a runbook (Markdown) as the HTML page Prometheus serves under /consoles/.

Where there is no repository host to link to (the lab), the monitoring role publishes
runbooks/ through Prometheus's console templates: /consoles/runbooks/<Alert>.md on the
UI port the on-call already reaches, over the same HTTPS and basic auth, so an alert's
`runbook_url` keeps the one pattern of monitoring/config.yml everywhere.

Prometheus expands every console file as a Go html/template: literal text passes
through, `{{` would start an action. The page escapes it, so a runbook may quote
Prometheus templates. Links between runbooks stay relative (`ZoneDown.md`) and work
as served; headings get GitHub's anchors, so `on-call.md#reaching-prometheus-and-alertmanager`
lands where it does on the repository host.
"""

from __future__ import annotations

import html
import itertools
import re

from ansible.errors import AnsibleFilterError
from markdown_it import MarkdownIt

_GO_ACTION = "{{"
_GO_ACTION_ESCAPED = '{{ "{{" }}'

_NOT_IN_SLUG = re.compile(r"[^\w\- ]")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - runbook</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 58rem; margin: 2rem auto; }}
body {{ padding: 0 1rem; line-height: 1.5; }}
pre {{ background: #f4f4f4; padding: 0.75rem; overflow-x: auto; }}
code {{ font-family: ui-monospace, monospace; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def heading_slug(text: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes."""
    return _NOT_IN_SLUG.sub("", text.strip().lower()).replace(" ", "-")


def _render(markdown_text: str) -> str:
    parser = MarkdownIt("commonmark").enable("table")
    tokens = parser.parse(markdown_text)
    seen: dict[str, int] = {}
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open":
            slug = heading_slug(inline.content)
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            opening.attrSet("id", slug if count == 0 else f"{slug}-{count}")
    return parser.renderer.render(tokens, parser.options, {})


def runbook_page(markdown_text: str, name: str) -> str:
    """The runbook `name` (its file's stem) as a console page."""
    if not str(markdown_text).strip():
        raise AnsibleFilterError(f"runbook_page: runbook {name} is empty")
    body = _render(str(markdown_text))
    page = _PAGE.format(title=html.escape(str(name)), body=body)
    return page.replace(_GO_ACTION, _GO_ACTION_ESCAPED)


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"runbook_page": runbook_page}

"""Reports as one list of blocks, rendered to Markdown and to self-contained HTML, so the two documents
carry the same content. Everything in a block may come from a results file, so the HTML escapes it all.

Blocks: ("h1"|"h2"|"h3"|"p", text), ("ul", items), ("table", header, rows), ("img", alt, relative path,
file), ("pre", language, text), ("links", [(text, relative href), ...]).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from urllib.parse import quote

_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "color:#222;line-height:1.45}table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ccc;"
    "padding:.25em .6em;text-align:left}th{background:#f3f3f3}pre{background:#f6f6f6;padding:.8em;overflow:auto}"
    "img{max-width:100%;display:block;margin:.5em 0 1em}li{margin:.3em 0}"
)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(blocks: list[tuple]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {block[1]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[1]}]({quote(block[2])})")
        elif kind == "pre":
            out.append(f"```{block[1]}\n{block[2]}\n```")
        elif kind == "links":
            out.append("\n".join(f"- [{text}]({quote(href)})" for text, href in block[1]))
    return "\n\n".join(out) + "\n"


def html_page(blocks: list[tuple]) -> str:
    esc = html.escape
    title = next((b[1] for b in blocks if b[0] == "h1"), "Study report")
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("<table><thead><tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in header)
                       + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
                       + "</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(Path(block[3]).read_bytes()).decode("ascii")
            out.append(f'<img alt="{esc(block[1])}" src="data:image/png;base64,{data}">')
        elif kind == "pre":
            out.append(f"<pre>{esc(block[2])}</pre>")
        elif kind == "links":
            out.append("<ul>" + "".join(f'<li><a href="{esc(quote(href))}">{esc(text)}</a></li>'
                                        for text, href in block[1]) + "</ul>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"

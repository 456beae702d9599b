"""The report's renderer: one Document written as Markdown (figures as files) and as self-contained HTML."""
import base64
import html
import math
import re

import numpy as np


def _fmt(x):
    """A cell: floats to 4 significant digits, integers with thousands separators, None as n/a."""
    if x is None:
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        return "n/a" if not math.isfinite(x) else f"{float(x):.4g}"
    return str(x)


def _numeric(x):
    return x is None or (isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)))


def slug(text):
    """The anchor of a heading, as GitHub and the HTML report spell it."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


class Document:
    """One report written twice: Markdown (figures as files) and self-contained HTML (figures inline).

    Parts are added in reading order; `slot(name)` keeps a place that `fill(name, other)` fills later
    (the findings, which lead the report but are judged from the sections after them). The table of
    contents is made from the headings when the report is rendered.
    """

    def __init__(self, title=None):
        self.title = title
        self.parts = []     # ("heading", text) | ("slot", name) | ("toc", None) | (markdown, html)
        self.figures = {}   # file name -> PNG bytes, written beside report.md

    def heading(self, text):
        self.parts.append(("heading", text))

    def slot(self, name):
        self.parts.append(("slot", name))

    def contents(self):
        self.parts.append(("toc", None))

    def fill(self, name, other):
        index = self.parts.index(("slot", name))
        self.parts[index:index + 1] = other.parts
        self.figures.update(other.figures)

    def para(self, text):
        self.parts.append((text, f"<p>{html.escape(text)}</p>"))

    def table(self, header, rows, caption=None):
        """A table; columns whose cells are all numbers (or n/a) are right-aligned."""
        right = [all(_numeric(row[i]) for row in rows) and any(row[i] is not None for row in rows)
                 for i in range(len(header))]
        md = ["| " + " | ".join(header) + " |", "|" + "".join("---:|" if r else "---|" for r in right)]
        md += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
        num = ' class="num"'
        head = "".join(f"<th{num if r else ''}>{html.escape(h)}</th>" for h, r in zip(header, right))
        body = "".join("<tr>" + "".join(f"<td{num if r else ''}>{html.escape(_fmt(c))}</td>"
                                        for c, r in zip(row, right)) + "</tr>" for row in rows)
        note = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(("\n".join(md + ([f"*{caption}*"] if caption else [])),
                           f'<div class="scroll"><table>{note}<thead><tr>{head}</tr></thead><tbody>{body}'
                           "</tbody></table></div>"))

    def figure(self, name, png, caption, table_name=None):
        self.figures[name] = png
        link = f" (data: [{table_name}]({table_name}))" if table_name else ""
        data = base64.b64encode(png).decode("ascii")
        note = f" (data: {html.escape(table_name)})" if table_name else ""
        self.parts.append((f"![{caption}]({name})\n\n*{caption}*{link}",
                           f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{html.escape(caption)}{note}</figcaption></figure>"))

    def _headings(self):
        return [text for kind, text in self.parts if kind == "heading"]

    def markdown(self):
        out = [f"# {self.title}", ""]
        for kind, value in self.parts:
            if kind == "heading":
                out += [f"## {value}", ""]
            elif kind == "toc":
                out += ["Contents: " + " · ".join(f"[{h}](#{slug(h)})" for h in self._headings()), ""]
            elif kind != "slot":
                out += [kind, ""]
        return "\n".join(out).rstrip() + "\n"

    def html_page(self, title=None):
        title = title or self.title
        style = ("body{font-family:system-ui,sans-serif;max-width:62em;margin:2em auto;padding:0 1em;line-height:1.45;"
                 "color:#222}h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}"
                 "nav{background:#f6f6f6;padding:.6em 1em;border-radius:4px}nav ol{margin:.2em 0;columns:2}"
                 ".scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;margin:1em 0;font-size:.92em}"
                 "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}"
                 "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
                 "caption{caption-side:bottom;font-style:italic;text-align:left}"
                 "img{max-width:100%;height:auto}figure{margin:1em 0}figcaption{font-style:italic}"
                 "p{overflow-wrap:anywhere}")
        body = [f"<h1>{html.escape(title)}</h1>"]
        for kind, value in self.parts:
            if kind == "heading":
                body.append(f'<h2 id="{slug(value)}">{html.escape(value)}</h2>')
            elif kind == "toc":
                items = "".join(f'<li><a href="#{slug(h)}">{html.escape(h)}</a></li>' for h in self._headings())
                body.append(f"<nav><strong>Contents</strong><ol>{items}</ol></nav>")
            elif kind != "slot":
                body.append(value)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}"
                f"</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

"""report.html: one self-contained page for a browser. Inline CSS, the charts embedded as
base64 PNG data URIs, no script and no external URL, so it can be mailed or archived as is.

The page's frame (title, identity facts, simulator banner, footer) is written here; its
sections are the task type's (`Report.html`).
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

import task_types
from task_types import Evaluated

_CSS = """
:root { --ink:#1f2328; --muted:#656d76; --line:#d8dee4; --soft:#f6f8fa; --accent:#3b6fb6;
  --ok:#1a7f37; --ok-bg:#dafbe1; --bad:#cf222e; --bad-bg:#ffebe9; --warn-bg:#fff8c5;
  --warn-line:#d4a72c; }
* { box-sizing: border-box; }
body { margin:0; background:#eef1f4; color:var(--ink);
  font:14px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Roboto, Helvetica, Arial, sans-serif; }
main { max-width:1160px; margin:0 auto; padding:28px 28px 48px; }
header h1 { font-size:26px; margin:0 0 4px; }
header .facts { color:var(--muted); margin:0; }
header .facts b { color:var(--ink); font-weight:600; }
.banner { margin:16px 0 0; padding:10px 14px; background:var(--warn-bg);
  border:1px solid var(--warn-line); border-radius:6px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(160px, 1fr)); gap:12px;
  margin:20px 0 8px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase;
  letter-spacing:.04em; }
.card .value { font-size:24px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .sub { color:var(--muted); font-size:12px; }
.card.headline { border-color:var(--accent); border-width:2px; }
.card.headline .value { font-size:32px; color:var(--accent); }
section { background:#fff; border:1px solid var(--line); border-radius:8px;
  padding:18px 20px; margin:18px 0; }
section h2 { font-size:18px; margin:0 0 4px; }
section h3 { font-size:15px; margin:18px 0 6px; }
.note { color:var(--muted); margin:0 0 10px; }
.warning { background:var(--warn-bg); border-left:4px solid var(--warn-line);
  padding:6px 10px; margin:0 0 10px; }
table { border-collapse:collapse; font-variant-numeric:tabular-nums; margin:4px 0 8px; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:right;
  white-space:nowrap; }
th:first-child, td:first-child { text-align:left; }
th { background:var(--soft); font-weight:600; }
tr.avg td { font-weight:600; background:#fbfcfd; }
td.text, th.text { text-align:left; white-space:normal; max-width:360px; }
.cols { display:grid; grid-template-columns:1fr 1fr; gap:20px; }
img.chart { display:block; max-width:100%; height:auto; margin:8px 0; }
.item { border-top:1px solid var(--line); padding:10px 0; }
.item .id { font-weight:600; }
.item .id span { color:var(--muted); font-weight:400; }
.line { margin:4px 0; line-height:2.1; }
.line .who { display:inline-block; width:42px; color:var(--muted); font-size:12px; }
.ent { border-radius:4px; padding:2px 4px; border:1px solid; }
.ent sub { font-size:10px; font-weight:600; margin-left:3px; }
.ent.ok { background:var(--ok-bg); border-color:#4ac26b; }
.ent.bad { background:var(--bad-bg); border-color:#ff8182; }
.item ul { margin:4px 0 0 42px; padding:0; color:var(--muted); }
dl.kinds { display:grid; grid-template-columns:max-content 1fr; gap:2px 12px; margin:6px 0 12px; }
dl.kinds dt { font-weight:600; } dl.kinds dd { margin:0; color:var(--muted); }
footer { color:var(--muted); font-size:12px; margin-top:24px; }
"""


def report_html(ev: Evaluated, charts: Mapping[str, bytes] | None = None) -> str:
    """The page's HTML. Pass the charts' PNG bytes by file name (see `charts`) to embed them."""
    report = task_types.get(ev.task).report
    f = ev.figures
    facts = report.facts(ev)
    fact_line = " · ".join(f"{escape(k)} <b>{escape(v)}</b>" for k, v in facts[:4])
    banner = (
        '<div class="banner"><b>Answers came from the prelabel simulator</b>, which replays '
        "gold labels: these numbers test the plumbing, not a model.</div>"
        if f.simulator
        else ""
    )
    title = f"prelabel evaluation — {f.dataset or 'dataset'} {f.split}".strip()
    page = report.html(ev, charts or {})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body><main>
<header><h1>prelabel evaluation</h1><p class="facts">{fact_line}</p>
<p class="facts">{page.summary}</p>{banner}</header>
{page.body}
<footer>{escape(page.footer)}</footer>
</main></body></html>
"""


__all__ = ["report_html"]

"""How the evaluations page shows its data: table cells, the progress bar, the charts (metric means, the scores'
spread, the cases' latency as a histogram) and the comparison's cards, as HTML strings in inline styles.

Everything here is a plain function of data already read; the page (``ui.evaluations_page``) reads it. Every
user-controlled string (case keys, inputs, answers, errors, document ids, names) goes through ``html.escape``:
a test set is hostile input.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

TEXT_CELL = 200
CASES_SHOWN = 50
BINS = (("0", "#dc2626"), ("above 0, below 0.5", "#f97316"), ("0.5, below 1", "#eab308"), ("1", "#16a34a"))
ROW = "display:grid;grid-template-columns:10em 1fr 11em;gap:8px;align-items:center;margin:3px 0"
A_COLOUR, B_COLOUR = "#2563eb", "#f97316"
LATENCY_BINS = 10        # about this many; the bin width is rounded up to 1, 2 or 5 × 10ⁿ ms
PLOT = "position:relative;display:flex;align-items:flex-end;height:80px;border-bottom:1px solid #9ca3af"


def cell(value: Any) -> str:
    """A table cell's text: a string as it is, anything else as JSON, cut at 200 characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= TEXT_CELL else text[:TEXT_CELL] + "…"


def input_cell(inputs: dict[str, Any] | None) -> str:
    if not inputs:
        return ""
    return cell(inputs["input"]) if list(inputs) == ["input"] else cell(inputs)


def score(value: float | None, form: str = "{:.3f}") -> str:
    return "—" if value is None else form.format(value)


def data(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def bar(share: float | None, colour: str) -> str:
    percent = 100 * min(max(share or 0.0, 0.0), 1.0)
    return (f'<div style="height:10px;border-radius:4px;overflow:hidden;background:#e5e7eb">'
            f'<div style="width:{percent:.1f}%;height:100%;background:{colour}"></div></div>')


def documents_cell(documents: list[dict[str, Any]]) -> str:
    return ", ".join(str(d.get("document_id") or d.get("id") or "?") for d in documents[:3])


def progress_bar(state: str, counts: dict[str, int], total: int, error: str | None) -> str:
    """The evaluation's job as a bar (cases run green, failed red) under its state."""
    done, failed, running = counts.get("succeeded", 0), counts.get("failed", 0), counts.get("running", 0)
    return (
        f'<div id="ev-progress" data-state="{state}" data-done="{done}" data-failed="{failed}" data-total="{total}">'
        f'<div style="display:flex;height:18px;border-radius:4px;overflow:hidden;background:#e5e7eb">'
        f'<div style="width:{100 * done / max(total, 1):.2f}%;background:#16a34a"></div>'
        f'<div style="width:{100 * failed / max(total, 1):.2f}%;background:#dc2626"></div></div>'
        f"<p><b>{state}</b> (running → scoring → done) · {done} of {total} cases run · {failed} failed · "
        f"{running} running</p>{html.escape(error or '')}</div>")


def chart_html(metrics: dict[str, dict[str, Any]]) -> str:
    """One bar per metric: its mean on the 0..1 scale every metric here has (n: the cases it scored)."""
    bars = []
    for metric, row in metrics.items():
        n, unscored = int(row.get("n") or 0), int(row.get("errors") or 0)
        more = f", {unscored} unscored" if unscored else ""
        bars.append(f'<div class="ev-bar" data-metric="{html.escape(metric)}" data-mean="{data(row.get("mean"))}" '
                    f'data-n="{n}" style="{ROW}"><span>{html.escape(metric)}</span>{bar(row.get("mean"), A_COLOUR)}'
                    f"<span>{score(row.get('mean'))} (n={n}{more})</span></div>")
    return f'<div id="ev-chart"><p><b>Metric means</b> (0 to 1)</p>{"".join(bars)}</div>'


def distribution_html(results: list[Any], metrics: list[str]) -> str:
    """Per metric, how many cases scored 0, above 0 below 0.5, 0.5 below 1, and 1: a stacked bar each."""
    rows = []
    for metric in metrics:
        values = [r.scores[metric] for r in results if r.scores.get(metric) is not None]
        bins = [sum(v <= 0 for v in values), sum(0 < v < 0.5 for v in values), sum(0.5 <= v < 1 for v in values),
                sum(v >= 1 for v in values)]
        segments = "".join(f'<div title="{label}: {count}" style="width:{100 * count / max(len(values), 1):.1f}%;'
                           f'background:{colour}"></div>' for (label, colour), count in zip(BINS, bins, strict=True))
        rows.append(f'<div class="ev-dist" data-metric="{html.escape(metric)}" data-bins="{",".join(map(str, bins))}" '
                    f'style="{ROW}"><span>{html.escape(metric)}</span><div style="display:flex;height:12px;'
                    f'border-radius:4px;overflow:hidden;background:#e5e7eb">{segments}</div>'
                    f'<span>{" · ".join(map(str, bins))}</span></div>')
    legend = " · ".join(f'<span style="color:{colour}">■</span> {label}' for label, colour in BINS)
    return f'<div id="ev-dist"><p><b>How the cases scored</b> ({legend})</p>{"".join(rows)}</div>'


def ms(value: float) -> str:
    """Milliseconds for a label: whole where they are (40, not 40.0), else to the microsecond."""
    return f"{round(value, 3):.3f}".rstrip("0").rstrip(".")


def latency_bins(runs: list[list[float]], count: int = LATENCY_BINS) -> tuple[float, float, int]:
    """Bins every run in ``runs`` shares: (first edge, width, how many), spanning the lowest to the highest
    latency in about ``count`` bins of a round width."""
    values = [v for run in runs for v in run]
    low, high = min(values), max(values)
    raw = (high - low) / count if high > low else max(high, 1.0) / count
    step = 10 ** math.floor(math.log10(raw))
    width = next(m * step for m in (1, 2, 5, 10) if m * step >= raw * (1 - 1e-9))
    start = math.floor(low / width) * width
    return start, width, int((high - start) // width) + 1


def _counts(values: list[float], start: float, width: float, bins: int) -> list[int]:
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, max(0, int((value - start) // width)))] += 1
    return counts


def _histogram(latencies: list[tuple[str, float]], percentiles: dict[str, Any] | None,
               edges: tuple[float, float, int], top: int, colour: str, run: str = "") -> str:
    """One run's latency: a column per bin (its height: the bin's cases against ``top``), p50 and p95 dashed."""
    start, width, bins = edges
    counts = _counts([v for _, v in latencies], start, width, bins)
    tag = f' data-run="{run}"' if run else ""
    columns = "".join(
        f'<div class="ev-lat-bin"{tag} data-from="{ms(start + i * width)}" data-to="{ms(start + (i + 1) * width)}" '
        f'data-count="{n}" title="{ms(start + i * width)}–{ms(start + (i + 1) * width)} ms: {n} case(s)" '
        f'style="flex:1;height:100%;display:flex;align-items:flex-end;padding:0 1px">'
        f'<div class="ev-lat-bar" style="height:{100 * n / max(top, 1):.1f}%;min-height:{2 if n else 0}px;'
        f'width:100%;background:{colour};border-radius:2px 2px 0 0"></div></div>' for i, n in enumerate(counts))
    marks = "".join(
        f'<div class="ev-lat-mark"{tag} data-mark="{name}" data-ms="{ms(value)}" title="{name} {ms(value)} ms" '
        f'style="position:absolute;top:0;bottom:0;left:{min(max((value - start) / (bins * width), 0), 1) * 100:.2f}%;'
        f'border-left:2px dashed currentColor"><span style="position:absolute;top:{offset}px;left:3px;'
        f'font-size:11px">{name}</span></div>'
        for (name, offset) in (("p50", 0), ("p95", 14))
        if (value := (percentiles or {}).get(name)) is not None)
    slowest = max(latencies, key=lambda pair: pair[1])
    caption = (f"{len(latencies)} cases ran · p50 {score((percentiles or {}).get('p50'), '{:.0f} ms')} · p95 "
               f"{score((percentiles or {}).get('p95'), '{:.0f} ms')} · slowest: {html.escape(slowest[0])} "
               f"({slowest[1]:.0f} ms)")
    return (f"<p>{f'{run.upper()}: ' if run else ''}{caption}</p><div style=\"{PLOT}\">{columns}{marks}</div>"
            f'<div style="display:flex;justify-content:space-between;font-size:11px"><span>{ms(start)} ms</span>'
            f"<span>{ms(start + bins * width)} ms</span></div>")


def latency_html(latencies: list[tuple[str, float]], percentiles: dict[str, Any] | None) -> str:
    """One evaluation's latency: how many of the cases that ran (``(case key, ms)``) took how long, with the
    summary's p50 and p95 marked."""
    if not latencies:
        return '<div id="ev-latency"><p><b>Latency</b>: no case ran.</p></div>'
    edges = latency_bins([[v for _, v in latencies]])
    top = max(_counts([v for _, v in latencies], *edges))
    return (f'<div id="ev-latency"><p><b>Latency</b> of the cases that ran (dashed: p50 and p95)</p>'
            f"{_histogram(latencies, percentiles, edges, top, A_COLOUR)}</div>")


def compare_latency_html(a: list[tuple[str, float]], b: list[tuple[str, float]],
                         percentiles: dict[str, Any]) -> str:
    """Both evaluations' latency histograms side by side, on the same bins and the same height scale."""
    if not a and not b:
        return '<div id="ev-compare-latency"><p><b>Latency</b>: no case ran in either.</p></div>'
    edges = latency_bins([[v for _, v in side] for side in (a, b) if side])
    top = max(max(_counts([v for _, v in side], *edges)) for side in (a, b))
    sides = "".join(
        f'<div class="ev-latency" data-run="{run}">'
        + (_histogram(side, percentiles.get(run), edges, top, colour, run) if side
           else f"<p>{run.upper()}: no case ran.</p>") + "</div>"
        for run, side, colour in (("a", a, A_COLOUR), ("b", b, B_COLOUR)))
    return (f'<div id="ev-compare-latency"><p><b>Latency</b> (<span style="color:{A_COLOUR}">■</span> A, '
            f'<span style="color:{B_COLOUR}">■</span> B; the same bins and scale; dashed: p50 and p95)</p>'
            f'<div style="display:grid;grid-template-columns:1fr 1fr;gap:16px">{sides}</div></div>')


def summary_html(title: str, state: str, summary: dict[str, Any], scored: list[Any], latency: str) -> str:
    """A finished evaluation: its line (cases, failures, latency), the metric means, the scores' spread, then
    ``latency`` (its histogram, :func:`latency_html`)."""
    percentiles, unknown = summary.get("latency_ms") or {}, summary.get("unknown_sources") or []
    note = (f"<p>Cases expecting a document no knowledge base has: {html.escape(', '.join(unknown[:5]))}.</p>"
            if unknown else "")
    line = (f"<p><b>{html.escape(title)}</b> · {summary.get('cases', 0)} cases · {summary.get('failed', 0)} failed "
            f"({summary.get('failure_rate') or 0:.0%}) · latency p50 {score(percentiles.get('p50'), '{:.0f} ms')} · "
            f"p95 {score(percentiles.get('p95'), '{:.0f} ms')}</p>")
    metrics = summary.get("metrics") or {}
    return (f'<div id="ev-summary" data-state="{state}">{line}{chart_html(metrics)}'
            f"{distribution_html(scored, list(metrics))}{latency}{note}</div>")


def compare_chart_html(metrics: dict[str, dict[str, Any]]) -> str:
    """Both evaluations' means per metric, A above B, on the 0..1 scale."""
    pairs = "".join(
        f'<div class="ev-pair" data-metric="{html.escape(m)}" data-a="{data(row["a"])}" data-b="{data(row["b"])}" '
        f'style="{ROW}"><span>{html.escape(m)}</span><div>{bar(row["a"], A_COLOUR)}<div style="height:3px"></div>'
        f'{bar(row["b"], B_COLOUR)}</div><span>{score(row["a"])} → {score(row["b"])}</span></div>'
        for m, row in metrics.items())
    return (f'<div id="ev-compare-chart"><p><b>Means</b> (<span style="color:{A_COLOUR}">■</span> A, '
            f'<span style="color:{B_COLOUR}">■</span> B)</p>{pairs}</div>')


def worse_html(cases: list[dict[str, Any]], worse: set[str], inputs: dict[str, dict[str, Any]]) -> str:
    """The cases that changed, those that got worse first: input, what changed, both answers and documents."""
    if not cases:
        return '<div id="ev-worse"><p>No case changed.</p></div>'
    td = 'style="border-top:1px solid #e5e7eb;padding:4px;vertical-align:top"'
    rows = "".join(
        f'<tr class="ev-case" data-key="{html.escape(c["key"])}" data-worse="{str(c["key"] in worse).lower()}">'
        + "".join(f"<td {td}>{html.escape(value)}</td>" for value in (
            c["key"], input_cell(inputs.get(c["key"])), ", ".join(f"{m} {d:+.3f}" for m, d in c["change"].items()),
            cell(c["a"]["answer"] or c["a"]["error"] or ""), cell(c["b"]["answer"] or c["b"]["error"] or ""),
            documents_cell(c["a"]["documents"]), documents_cell(c["b"]["documents"])))
        + "</tr>" for c in cases[:CASES_SHOWN])
    heads = "".join(f'<th style="text-align:left;padding:4px">{h}</th>' for h in (
        "case", "input", "change", "A answer", "B answer", "A documents", "B documents"))
    return (f'<div id="ev-worse"><p><b>Cases that changed</b>, worse first (the first {CASES_SHOWN})</p>'
            f'<table style="width:100%;border-collapse:collapse"><tr>{heads}</tr>{rows}</table></div>')


def result_rows(results: list[Any], inputs: dict[str, dict[str, Any]]) -> list[list]:
    """The per-case table: case, input, succeeded, answer, scores, documents, error."""
    return [[r.case_key, input_cell(inputs.get(r.case_key)), "yes" if r.succeeded else "no", cell(r.answer or ""),
             " · ".join(f"{m} {score(v)}" for m, v in r.scores.items()), documents_cell(r.documents),
             cell(r.error or "; ".join(f"{m}: {e}" for m, e in r.errors.items()))] for r in results]


def compare_rows(metrics: dict[str, dict[str, Any]]) -> list[list]:
    """The comparison table: per metric both means, the delta, the sign test's p-value and the case counts."""
    return [[m, score(r["a"]), score(r["b"]), "—" if r["delta"] is None else f"{r['delta']:+.3f}",
             f"{r['p_value']:.3f}", r["better"], r["worse"], r["n"]] for m, r in metrics.items()]

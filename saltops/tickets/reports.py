"""The ticket report as a table, CSV or JSON (``ticket.report format=``), from :func:`workflow.summarise`.

One row per template: the volume, the count in each state, the time to
approve (seconds from creation to the last approval: count, mean, median,
max) and satisfaction (ratings 1-5: count, mean).
"""

import csv
import io

from saltops.errors import ValidationError
from saltops.tickets.workflow import TICKET_STATES

FORMATS = ("table", "csv", "json")
COLUMNS = ("template", "count", *TICKET_STATES, "approved", "approve_mean_s", "approve_median_s", "approve_max_s",
           "ratings", "satisfaction")


def rows(summary):
    """The summary as flat rows (dicts keyed by :data:`COLUMNS`), sorted by template."""
    out = []
    for template, item in sorted(summary.items()):
        wait = item["time_to_approve"] or {}
        rating = item["satisfaction"] or {}
        row = {"template": template, "count": item["count"],
               **{state: item["states"].get(state, 0) for state in TICKET_STATES},
               "approved": wait.get("count", 0), "approve_mean_s": wait.get("mean"),
               "approve_median_s": wait.get("median"), "approve_max_s": wait.get("max"),
               "ratings": rating.get("count", 0), "satisfaction": rating.get("mean")}
        out.append(row)
    return out


def _cell(value):
    return "" if value is None else str(value)


def as_table(summary):
    """Fixed-width text, one line per template, a header first."""
    lines = [[*COLUMNS]] + [[_cell(row[c]) for c in COLUMNS] for row in rows(summary)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def as_csv(summary):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(summary):
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def render(summary, fmt="json"):
    """``summary`` in ``fmt``: ``json`` returns the data itself, ``table`` and ``csv`` a string."""
    if fmt not in FORMATS:
        raise ValidationError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "table":
        return as_table(summary)
    if fmt == "csv":
        return as_csv(summary)
    return {"templates": summary, "rows": rows(summary)}

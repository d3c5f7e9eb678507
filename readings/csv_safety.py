"""The one rule that keeps spreadsheets from running a CSV text cell as a formula (OWASP "CSV injection").

A text cell gets a leading apostrophe (shown as text, never run) when it starts
with a formula character (= + - @), also after leading blanks, since
spreadsheets skip those before they look (line feed, carriage return, tab,
space, no-break space), and when it starts with a tab or carriage return at all
(OWASP counts those as triggers of their own). Numbers never come here.

The admin's exports apply it in Python, the streamed exports in PostgreSQL;
both read FORMULA_CELL, whose syntax means the same to Python's `re` and to
PostgreSQL's regular expressions.
"""

from __future__ import annotations

import re

from psycopg import sql

FORMULA_CELL = r"^(?:[\t\r]|[\t\n\r \u00a0]*[=+@-])"
_formula_cell = re.compile(FORMULA_CELL)


def neutralised(text: str) -> str:
    """`text`, with an apostrophe in front if a spreadsheet would run it as a formula."""
    return "'" + text if _formula_cell.match(text) else text


def neutralised_sql(expression: sql.Composable) -> sql.Composed:
    """SQL for `neutralised` of a text expression (NULL stays NULL)."""
    return sql.SQL("(CASE WHEN {e} ~ {pattern} THEN '''' || {e} ELSE {e} END)").format(
        e=expression, pattern=sql.Literal(FORMULA_CELL)
    )

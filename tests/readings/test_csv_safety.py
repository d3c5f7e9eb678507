"""readings.csv_safety: which text cells a spreadsheet would run as a formula, in Python and in PostgreSQL alike."""

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg import sql

from mbusportal.db import conninfo
from readings.csv_safety import neutralised, neutralised_sql

pytestmark = pytest.mark.django_db

FORMULA_CHARACTERS = ["=", "+", "-", "@"]
# Spreadsheets skip these before they look for a formula character.
BLANKS = {"line feed": "\n", "carriage return": "\r", "tab": "\t", "space": " ", "no-break space": "\u00a0"}

RUN_AS_FORMULA = [
    *[f"{c}1+1" for c in FORMULA_CHARACTERS],
    *[f"{blank}{c}cmd|' /C calc'!A0" for blank in BLANKS.values() for c in FORMULA_CHARACTERS],
    "\n \t\u00a0\r=1+1",  # several blanks, in any order
    "  @SUM(A1)",
    "\ttext",  # a leading tab or carriage return is a trigger by itself
    "\rtext",
    "\t",
    "\r",
]
LEFT_AS_THEY_ARE = [
    "",
    "Plain",
    "1=1",
    "a-b",
    "A0.tv",
    "\ntext",  # a blank without a formula character after it
    " text",
    "\u00a0text",
    "\n",
    " ",
    "\u00a0",
    "\n x=1",
    "\u2007=1",  # a figure space is not one of the blanks spreadsheets skip
]


def sql_neutralised(text: str) -> str:
    with psycopg.connect(conninfo()) as conn:
        row = conn.execute(sql.SQL("SELECT {}").format(neutralised_sql(sql.Literal(text)))).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("text", RUN_AS_FORMULA, ids=repr)
def test_it_puts_an_apostrophe_before_a_cell_a_spreadsheet_would_run(text):
    assert neutralised(text) == "'" + text
    assert sql_neutralised(text) == "'" + text


@pytest.mark.parametrize("text", LEFT_AS_THEY_ARE, ids=repr)
def test_it_leaves_other_cells_as_they_are(text):
    assert neutralised(text) == text
    assert sql_neutralised(text) == text


def test_it_leaves_null_null_in_sql():
    with psycopg.connect(conninfo()) as conn:
        row = conn.execute(sql.SQL("SELECT {}").format(neutralised_sql(sql.SQL("NULL::text")))).fetchone()
    assert row == (None,)


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.sampled_from([*FORMULA_CHARACTERS, *BLANKS.values(), "a", "1", "\u2007"]), max_size=6))
def test_it_gives_the_same_answer_in_python_and_postgresql(text):
    assert sql_neutralised(text) == neutralised(text)

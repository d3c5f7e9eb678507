"""settlements.deadlines: Lejeloven § 75 and § 77 as pure functions, on month ends and leap years."""

from datetime import date

import pytest

from settlements import deadlines


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap year
        (date(2024, 11, 30), 3, date(2025, 2, 28)),
        (date(2023, 11, 30), 3, date(2024, 2, 29)),
        (date(2025, 10, 15), 4, date(2026, 2, 15)),  # across the year
        (date(2025, 8, 31), 3, date(2025, 11, 30)),
    ],
)
def test_it_adds_months_clamped_to_the_month_end(day, months, expected):
    assert deadlines.add_months(day, months) == expected


@pytest.mark.parametrize(
    ("period_end", "expected"),
    [
        (date(2025, 1, 1), date(2025, 4, 30)),  # calendar year 2024 → 30 April
        (date(2025, 6, 1), date(2025, 9, 30)),  # billing year to 31 May → 30 September
        (date(2024, 12, 1), date(2025, 3, 31)),  # to 30 November → the end of March, not the 30th
        (date(2024, 11, 1), date(2025, 2, 28)),  # to 31 October → the last day of February
        (date(2023, 11, 1), date(2024, 2, 29)),  # … in a leap year
        (date(2025, 1, 16), date(2025, 5, 15)),  # a period ending mid-month
    ],
)
def test_it_gives_four_months_after_the_period(period_end, expected):
    assert deadlines.statement_deadline(period_end=period_end) == expected


def test_it_gives_three_months_after_a_late_supplier_bill():
    # Period to 31 May (4 months: 30 September); the bill came 15 August → 15 November.
    assert deadlines.statement_deadline(period_end=date(2025, 6, 1), supplier_final_bill_on=date(2025, 8, 15)) == date(
        2025, 11, 15
    )


def test_it_keeps_four_months_when_the_supplier_bill_came_early():
    # A bill on 20 June gives 20 September, earlier than 30 September: the four months count.
    assert deadlines.statement_deadline(period_end=date(2025, 6, 1), supplier_final_bill_on=date(2025, 6, 20)) == date(
        2025, 9, 30
    )


@pytest.mark.parametrize(
    ("period_end", "bill", "expected"),
    [
        (date(2024, 10, 1), date(2024, 11, 30), date(2025, 2, 28)),
        (date(2023, 10, 1), date(2023, 11, 30), date(2024, 2, 29)),
    ],
)
def test_it_clamps_the_supplier_months_at_february(period_end, bill, expected):
    # Four months after a period to 30 September: 31 January; the bill's three months run longer.
    assert deadlines.statement_deadline(period_end=period_end, supplier_final_bill_on=bill) == expected


def test_it_counts_the_deadline_day_as_in_time():
    deadline = date(2025, 9, 30)
    assert not deadlines.is_late(delivered_on=deadline, deadline=deadline)
    assert deadlines.is_late(delivered_on=date(2025, 10, 1), deadline=deadline)


def test_it_warns_within_thirty_days_and_not_after_the_deadline():
    deadline = date(2025, 9, 30)
    assert not deadlines.deadline_is_near(today=date(2025, 8, 30), deadline=deadline)
    assert deadlines.deadline_is_near(today=date(2025, 8, 31), deadline=deadline)
    assert deadlines.deadline_is_near(today=deadline, deadline=deadline)
    assert not deadlines.deadline_is_near(today=date(2025, 10, 1), deadline=deadline)


def test_it_gives_six_weeks_to_object_and_six_more_for_the_tribunal():
    assert deadlines.objection_deadline(date(2025, 2, 1)) == date(2025, 3, 15)
    assert deadlines.tribunal_deadline(date(2025, 2, 1)) == date(2025, 4, 26)

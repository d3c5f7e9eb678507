"""The deadlines of a heat or water statement under Lejeloven (2022), as pure functions of dates.

- § 75: the statement must reach the tenant within 4 months of the end of the accounting period or, where
  the landlord buys the heat or water from a supplier, within 3 months of receiving the supplier's final
  bill, whichever is later. A statement that arrives later gives the landlord no claim to an additional
  payment; a refund is still the tenant's.
- § 77: the tenant may object within 6 weeks of receiving the statement; the landlord must then bring a
  dispute before the rent tribunal within 6 weeks after that deadline.

Every date here is a calendar day in the property's time. Models, services, the admin and the
statement ask these functions; nothing else counts months or weeks.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

STATEMENT_MONTHS_AFTER_PERIOD = 4  # § 75, stk. 1
STATEMENT_MONTHS_AFTER_SUPPLIER_BILL = 3  # § 75, stk. 1, where the supplier's final bill came late
OBJECTION_PERIOD = timedelta(weeks=6)  # § 77, stk. 1
TRIBUNAL_PERIOD = timedelta(weeks=6)  # § 77, stk. 2
# How early the admin warns that the § 75 deadline is near.
WARN_BEFORE = timedelta(days=30)


def add_months(day: date, months: int) -> date:
    """The same day of the month `months` later; the month's last day where it is shorter (31 Jan + 1 → 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def statement_deadline(*, period_end: date, supplier_final_bill_on: date | None = None) -> date:
    """The last day a statement may reach the tenant (§ 75).

    `period_end` is the first day after the period (as Settlement stores it). The 4 months run from the
    period's end, the midnight that starts `period_end`: a period to 31 May ends 30 September, one to
    30 November on 31 March, one to 31 October on the last day of February. The supplier's 3 months run
    from the day the bill was received: 30 November → 28 (29) February. The later of the two counts.
    """
    deadline = add_months(period_end, STATEMENT_MONTHS_AFTER_PERIOD) - timedelta(days=1)
    if supplier_final_bill_on is not None:
        deadline = max(deadline, add_months(supplier_final_bill_on, STATEMENT_MONTHS_AFTER_SUPPLIER_BILL))
    return deadline


def is_late(*, delivered_on: date, deadline: date) -> bool:
    """Whether a statement delivered on `delivered_on` came after the § 75 deadline (the deadline day is in time)."""
    return delivered_on > deadline


def deadline_is_near(*, today: date, deadline: date) -> bool:
    """Whether the admin should warn: the deadline has not passed but is within `WARN_BEFORE` of `today`."""
    return today <= deadline <= today + WARN_BEFORE


def objection_deadline(delivered_on: date) -> date:
    """The last day the tenant may object to a statement received on `delivered_on` (§ 77: six weeks)."""
    return delivered_on + OBJECTION_PERIOD


def tribunal_deadline(delivered_on: date) -> date:
    """The last day the landlord may bring an objection before the rent tribunal: six weeks after the objection
    deadline (§ 77, stk. 2)."""
    return objection_deadline(delivered_on) + TRIBUNAL_PERIOD

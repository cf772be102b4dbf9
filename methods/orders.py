"""Methods with type hints: params validated and converted by them, results encoded as JSON.

``orders.total`` takes an ``Order`` (a dataclass) and returns a ``Receipt`` (a pydantic model);
``"qty": "3"`` arrives as ``3``, ``"qty": "lots"`` is answered -32602 with the path
``/order/lines/0/qty`` (see docs/methods.md, "Params from type hints").
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field


class Currency(enum.Enum):
    """The currencies an order may be priced in."""

    EUR = "EUR"
    USD = "USD"


@dataclasses.dataclass
class Line:
    """One line of an order: ``qty`` items at ``unit_price`` each."""

    sku: str
    qty: int
    unit_price: Decimal


@dataclasses.dataclass
class Order:
    """An order: its lines, currency and the time it was placed (ISO 8601)."""

    lines: list[Line]
    currency: Currency = Currency.EUR
    placed_at: datetime.datetime | None = None


class Receipt(BaseModel):
    """What ``orders.total`` answers."""

    total: Decimal
    currency: Currency
    items: int = Field(ge=0)
    placed_at: datetime.datetime | None


def total(order: Order, rounding: Literal["cent", "unit"] = "cent") -> Receipt:
    """Add up an order.

    Args:
        order: the order; each line's ``qty`` and ``unit_price`` may be sent as strings.
        rounding: ``"cent"`` (two decimals) or ``"unit"`` (whole units).

    Returns:
        The total, the currency, the number of items and when the order was placed.
    """
    amount = sum((line.unit_price * line.qty for line in order.lines), Decimal(0))
    amount = amount.quantize(Decimal("0.01") if rounding == "cent" else Decimal(1))
    return Receipt(
        total=amount,
        currency=order.currency,
        items=sum(line.qty for line in order.lines),
        placed_at=order.placed_at,
    )


def double(n: int) -> int:
    """Return ``2 * n``: ``"21"`` is taken as ``21``."""
    return 2 * n

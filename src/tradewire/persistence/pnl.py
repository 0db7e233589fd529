"""Realized P&L by the average-cost method.

Each symbol has a signed open quantity (long > 0, short < 0) and the average cost of that
open quantity. A fill of signed quantity q at price p:

- in the direction of the position (or from flat) *opens*: the average cost becomes the
  quantity-weighted mean of the old average and p; nothing is realized;
- against the position *closes* min(|q|, |position|) units and realizes
  closed * (p - avg_cost) * sign(position) — a long sold above its cost or a short bought
  back below it is a profit; the average cost of what stays open does not change;
- whatever is left of q after the position reaches zero opens a new position at p.

Unlike the seed's signed cash-flow sum (sell proceeds minus buy cost), buying inventory that
is still held is not a loss: only closed quantity realizes anything. Open inventory is marked
to market separately (unrealized P&L, from the positions channel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

EPSILON = 1e-9


@dataclass
class Book:
    """Average-cost state of one symbol."""

    quantity: float = 0.0
    avg_cost: float = 0.0
    realized: float = 0.0

    def fill(self, quantity: float, price: float) -> float:
        """Apply a fill of signed `quantity` (buy > 0, sell < 0) at `price`; returns the
        P&L it realized."""
        if abs(quantity) < EPSILON:
            return 0.0
        pos = self.quantity
        if abs(pos) < EPSILON or (pos > 0) == (quantity > 0):
            new = pos + quantity
            self.avg_cost = (abs(pos) * self.avg_cost + abs(quantity) * price) / abs(new)
            self.quantity = new
            return 0.0
        closed = min(abs(quantity), abs(pos))
        realized = closed * (price - self.avg_cost) * (1.0 if pos > 0 else -1.0)
        self.realized += realized
        left = abs(quantity) - closed
        if left > EPSILON:  # flipped through zero: the rest opens at this price
            self.quantity = left if quantity > 0 else -left
            self.avg_cost = price
        else:
            self.quantity = pos + (closed if quantity > 0 else -closed)
            if abs(self.quantity) < EPSILON:
                self.quantity, self.avg_cost = 0.0, 0.0
        return realized

    def unrealized(self, mark: float) -> float:
        return (mark - self.avg_cost) * self.quantity


@dataclass
class Ledger:
    """Average-cost books for many symbols."""

    books: dict[str, Book] = field(default_factory=dict)

    def fill(self, symbol: str, quantity: float, price: float) -> float:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = Book()
        return book.fill(quantity, price)

    def book(self, symbol: str) -> Book:
        return self.books.get(symbol) or Book()

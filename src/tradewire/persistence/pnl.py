"""Realized P&L by the average-cost method, with the execution engine's own fill rule.

:class:`Book` is the engine's book (crates/rules, `tradewire.rules.Book`): a fill in the
direction of the position (or from flat) opens at the quantity-weighted average cost; a
fill against it closes ``min(|fill|, |position|)`` and realizes
``closed * (price - avg_cost) * sign(position)``, leaving the cost of what stays open
unchanged; what is left after the position reaches zero opens a new one at the fill's
price. So the P&L computed from recorded fills is the P&L the engine reported.

Unlike the seed's signed cash-flow sum (sell proceeds minus buy cost), buying inventory that
is still held is not a loss: only closed quantity realizes anything. Open inventory is marked
to market separately (unrealized P&L, from the positions channel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tradewire.rules import Book

__all__ = ["Book", "Ledger"]


@dataclass
class Ledger:
    """Average-cost books for many symbols."""

    books: dict[str, Book] = field(default_factory=dict)

    def fill(self, symbol: str, quantity: float, price: float) -> float:
        """Apply a fill of signed ``quantity`` (buy > 0, sell < 0) at ``price``; returns the
        P&L it realized."""
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = Book()
        return book.fill(quantity, price)

    def book(self, symbol: str) -> Book:
        return self.books.get(symbol) or Book()

"""The bank the transfer workflows call: an in-memory ledger shared by both worker versions."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import activity


@dataclass
class Bank:
    balances: dict[str, int] = field(default_factory=lambda: {"alice": 100, "bob": 0})
    quotes: dict[str, int] = field(default_factory=dict)  # transfer id -> amount to move

    @activity.defn
    async def withdraw(self, account: str, amount: int) -> None:
        self.balances[account] -= amount

    @activity.defn
    async def deposit(self, account: str, amount: int) -> None:
        self.balances[account] += amount

    @activity.defn
    async def fetch_amount(self, transfer_id: str) -> int:
        """v2 only: the amount comes from the bank instead of being fixed in the code."""
        return self.quotes.get(transfer_id, 10)

"""The bank the transfers move money in: an in-memory stand-in for a real one.

Each activity takes a `Movement` whose `reference` is an idempotency key: if an activity is
retried after it already applied its movement (say the worker died before reporting success),
it returns the first confirmation instead of moving the money twice. Errors the caller cannot
fix by retrying (an unknown or frozen account, too little money) are non-retryable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory


@dataclass(frozen=True)
class Movement:
    """Money into or out of one account."""

    account: str
    amount: int
    reference: str
    """Idempotency key, unique per movement: `<transfer id>/withdraw`, `.../deposit`, `.../refund`."""


class Bank:
    """Accounts with balances; some may be frozen (they accept no money)."""

    def __init__(self, balances: Mapping[str, int], frozen: Iterable[str] = ()) -> None:
        self.balances = dict(balances)
        self.frozen = set(frozen)
        self.confirmations: dict[str, str] = {}
        self.journal: list[str] = []
        """One line per movement applied, in order, e.g. `withdraw alice 100 (t-1/withdraw)`."""

    def activities(self) -> list[Callable[..., Any]]:
        """The activities to register on a worker."""
        return [self.withdraw, self.deposit, self.refund]

    @activity.defn
    async def withdraw(self, movement: Movement) -> str:
        if confirmation := self.confirmations.get(movement.reference):
            return confirmation
        self._check_account(movement.account)
        if self.balances[movement.account] < movement.amount:
            raise _refusal(
                f"account {movement.account} has too little money for {movement.amount}",
                "InsufficientFunds",
            )
        self.balances[movement.account] -= movement.amount
        return self._confirm("withdraw", movement)

    @activity.defn
    async def deposit(self, movement: Movement) -> str:
        if confirmation := self.confirmations.get(movement.reference):
            return confirmation
        self._check_account(movement.account)
        if movement.account in self.frozen:
            raise _refusal(f"account {movement.account} is frozen", "AccountFrozen")
        self.balances[movement.account] += movement.amount
        return self._confirm("deposit", movement)

    @activity.defn
    async def refund(self, movement: Movement) -> str:
        """Give back money withdrawn by a transfer that could not finish (the compensation)."""
        if confirmation := self.confirmations.get(movement.reference):
            return confirmation
        self._check_account(movement.account)
        self.balances[movement.account] += movement.amount
        return self._confirm("refund", movement)

    def _check_account(self, account: str) -> None:
        if account not in self.balances:
            raise _refusal(f"there is no account {account}", "UnknownAccount")

    def _confirm(self, kind: str, movement: Movement) -> str:
        confirmation = f"{kind}-{len(self.journal) + 1}"
        self.confirmations[movement.reference] = confirmation
        self.journal.append(f"{kind} {movement.account} {movement.amount} ({movement.reference})")
        return confirmation


def _refusal(message: str, error_type: str) -> ApplicationError:
    """A business error: retrying cannot help, and it is expected (BENIGN: the worker logs it
    at DEBUG level, not as an activity failure with a stack trace)."""
    return ApplicationError(
        message, type=error_type, non_retryable=True, category=ApplicationErrorCategory.BENIGN
    )

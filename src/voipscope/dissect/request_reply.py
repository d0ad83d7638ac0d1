"""A request one side sent and the reply from the other: the evidence of the lookalike
dissectors whose single datagram says too little (Activision, Epic Games, NetEase, CoD
Mobile): a reply that echoes its request's id or token is what random bytes do not do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

MAX_OPEN_REQUESTS = 4  # unanswered requests remembered per flow (attacker-controlled)

Request = TypeVar("Request")
Reply = TypeVar("Reply")


@dataclass(slots=True)
class OpenRequests(Generic[Request]):
    """A flow's requests not yet answered, oldest first, with the direction each went."""

    pending: list[tuple[int, Request]] = field(default_factory=list)

    def add(self, direction: int, request: Request) -> None:
        if len(self.pending) >= MAX_OPEN_REQUESTS:
            self.pending.pop(0)
        self.pending.append((direction, request))

    def answered_by(
        self, direction: int, reply: Reply, answers: Callable[[Request, Reply], bool]
    ) -> Request | None:
        """The oldest request from the other side that ``reply`` answers, if any."""
        for sent, request in self.pending:
            if sent != direction and answers(request, reply):
                return request
        return None

    def __bool__(self) -> bool:
        return bool(self.pending)

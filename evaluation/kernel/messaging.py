"""Messages to people's phones (SMS): the interface the domain sends through.

A center configures a provider; the embedded default is a local outbox (one JSON file per
message under the data directory, as a developer's mail catcher), which is what `make run`,
the demo and the tests read. Real SMS gateways plug in behind the same two members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Message:
    to: str  # the registered mobile number, as stored
    text: str
    purpose: str  # what the message is for ("sign-in-code", "signing-code", ...)
    # The text's variable parts by name, for providers that send by template.
    params: dict[str, str] = field(default_factory=dict)


class Messenger(Protocol):
    """Sends one message; returns the provider's id for it. Raises MessagingFailed when the
    message could not be handed over."""

    name: str

    def send(self, message: Message) -> str: ...


class MessagingFailed(Exception):
    """The provider did not take the message."""

"""Messages to people's phones (SMS): the interface the domain sends through.

A center configures a provider; the embedded default is a local outbox (one JSON file per
message under the data directory, as a developer's mail catcher), which is what `make run`,
the demo and the tests read. Real SMS gateways plug in behind the same two members
(api/sms_providers.py). Chinese gateways send only templates approved in advance, filled
with named parameters: a message carries both its full text (for the outbox) and the
parameters a template takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Message:
    to: str  # the registered mobile number, as stored
    text: str
    purpose: str  # what the message is for ("sign-in-code", "signing-code", ...)
    # What a provider's template for this purpose is filled with ({"code": "123456"}).
    params: dict[str, str] = field(default_factory=dict)


class Messenger(Protocol):
    """Sends one message; returns the provider's id for it. Raises MessagingFailed when the
    message could not be handed over."""

    name: str

    def send(self, message: Message) -> str: ...


class MessagingFailed(Exception):
    """The provider did not take the message."""

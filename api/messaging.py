"""The local outbox: the embedded default messaging provider.

Each message becomes one JSON file in `<data dir>/outbox/` (written atomically), where a
developer, the demo or a test reads it, as a mail catcher does for e-mail. It reaches no
phone: a center that enables the SMS code turns on a real SMS provider in production
(`EVALSIGN_MESSAGING`), added to this interface by the call-up work.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from evaluation.kernel.messaging import Message, MessagingFailed


class LocalOutbox:
    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: Message) -> str:
        message_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
        body = {
            "id": message_id,
            "to": message.to,
            "purpose": message.purpose,
            "text": message.text,
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".part")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(body, out, ensure_ascii=False)
            os.replace(temporary, self.directory / f"{message_id}.json")
        except OSError as exc:
            raise MessagingFailed(f"the outbox cannot be written: {exc}") from exc
        return message_id

    def messages(self, to: str | None = None) -> list[dict[str, str]]:
        """Every message in the outbox (oldest first), or those to one number."""
        found = []
        for path in sorted(self.directory.glob("*.json")):
            body = json.loads(path.read_text(encoding="utf-8"))
            if to is None or body["to"] == to:
                found.append(body)
        return found

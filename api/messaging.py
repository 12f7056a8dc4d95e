"""The messaging provider a center chose (`EVALSIGN_MESSAGING`), and the local outbox, the
embedded default.

Each message to the outbox becomes one JSON file in `<data dir>/outbox/` (written
atomically), where a developer, the demo or a test reads it, as a mail catcher does for
e-mail. It reaches no phone: a center that enables the SMS code turns on a real SMS
provider in production (`aliyun` or `tencent`, api/sms_providers.py).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.sms_providers import (
    ALIYUN_ENDPOINT,
    ALIYUN_REGION,
    TENCENT_ENDPOINT,
    TENCENT_REGION,
    AliyunSms,
    SmsAccount,
    TencentSms,
)
from evaluation.kernel.messaging import Message, MessagingFailed, Messenger
from models.clock import Clock
from models.settings import Settings


def open_messenger(settings: Settings, clock: Clock) -> Messenger | None:
    """The configured provider; None when messaging is off."""
    if settings.messaging == "outbox":
        return LocalOutbox(settings.data_dir / "outbox")
    if settings.messaging == "aliyun":
        account = SmsAccount.from_settings(settings, endpoint=ALIYUN_ENDPOINT, region=ALIYUN_REGION)
        return AliyunSms(account, clock)
    if settings.messaging == "tencent":
        account = SmsAccount.from_settings(
            settings, endpoint=TENCENT_ENDPOINT, region=TENCENT_REGION
        )
        return TencentSms(account, clock)
    return None


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
            "params": message.params,
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

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Every message in the outbox (oldest first), or those to one number."""
        found = []
        for path in sorted(self.directory.glob("*.json")):
            body = json.loads(path.read_text(encoding="utf-8"))
            if to is None or body["to"] == to:
                found.append(body)
        return found

"""Task QR codes: the room token that rotates on the screen in the evaluation room, and the
QR images (PNG and SVG) of any task URL.

A room token is stateless: ``r1.<center>.<project>.<window>.<mac>``, where ``window`` counts
30-second periods since the epoch and ``mac`` is HMAC-SHA256 under a key derived for that
center from the master key. The screen shows a new token every period; each is accepted
for 60 seconds, so a phone that scanned just before the rotation still gets in, and a
photo of the screen is useless a minute later. Anyone may scan it: the face check that
follows decides who the scanner is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import qrcode
import qrcode.constants
import qrcode.image.pil
import qrcode.image.svg

from signing.keyring import Keyring

ROOM_PREFIX = "r1"
_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ROOM_TOKEN = re.compile(rf"^r1\.({_ID})\.({_ID})\.([0-9]{{1,12}})\.([A-Za-z0-9_-]{{43}})$")


@dataclass(frozen=True)
class RoomClaim:
    """What a room token says, before its MAC is checked."""

    center_id: str
    project_id: str
    window: int
    mac: str


@dataclass(frozen=True)
class RoomToken:
    token: str
    valid_from: datetime
    rotates_at: datetime
    expires_at: datetime


class RoomTokens:
    """Mints and checks room tokens; `period` is the rotation, `validity` the acceptance."""

    def __init__(
        self,
        keyring: Keyring,
        period: timedelta = timedelta(seconds=30),
        validity: timedelta = timedelta(seconds=60),
    ) -> None:
        self._keyring = keyring
        self.period = period
        self.validity = validity

    def _mac(self, center_id: str, project_id: str, window: int) -> str:
        key = self._keyring.derive(f"room-qr/v1/{center_id}")
        message = f"{ROOM_PREFIX}|{center_id}|{project_id}|{window}".encode()
        digest = hmac.new(key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def _window_start(self, window: int) -> datetime:
        return datetime.fromtimestamp(window * self.period.total_seconds(), UTC)

    def mint(self, center_id: str, project_id: str, now: datetime) -> RoomToken:
        window = int(now.timestamp() // self.period.total_seconds())
        mac = self._mac(center_id, project_id, window)
        start = self._window_start(window)
        return RoomToken(
            token=f"{ROOM_PREFIX}.{center_id}.{project_id}.{window}.{mac}",
            valid_from=start,
            rotates_at=start + self.period,
            expires_at=start + self.validity,
        )

    @staticmethod
    def parse(token: str) -> RoomClaim | None:
        """The claim of a well-formed room token (None for anything else)."""
        match = _ROOM_TOKEN.match(token)
        if match is None:
            return None
        center_id, project_id, window, mac = match.groups()
        return RoomClaim(center_id, project_id, int(window), mac)

    def authentic(self, claim: RoomClaim) -> bool:
        """Whether the MAC is the claimed center's (the token was minted by us for it)."""
        expected = self._mac(claim.center_id, claim.project_id, claim.window)
        return hmac.compare_digest(expected, claim.mac)

    def expires_at(self, claim: RoomClaim) -> datetime:
        return self._window_start(claim.window) + self.validity

    def valid_from(self, claim: RoomClaim) -> datetime:
        return self._window_start(claim.window)


def qr_png(data: str, box_size: int = 8) -> bytes:
    """A PNG of the QR code (error correction M: survives a glare spot on a screen)."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=box_size,
        border=4,
        image_factory=qrcode.image.pil.PilImage,
    )
    code.add_data(data)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer)
    return buffer.getvalue()


def qr_svg(data: str) -> str:
    """An SVG of the QR code: one path, scales to any screen or printout."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=4,
        image_factory=qrcode.image.svg.SvgPathImage,
    )
    code.add_data(data)
    code.make(fit=True)
    rendered: str = code.make_image().to_string(encoding="unicode")
    return rendered


def qr_text(data: str) -> str:
    """The QR code in block characters, for a terminal (dark modules on a light screen)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=1)
    code.add_data(data)
    code.make(fit=True)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()

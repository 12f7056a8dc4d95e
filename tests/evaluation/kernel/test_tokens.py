"""Bearer secrets: prefixed, 256 random bits, and only their SHA-256 is stored."""

from __future__ import annotations

import base64
import hashlib

from evaluation.kernel.tokens import SECRET_BYTES, hash_token, new_secret


def test_a_secret_is_its_prefix_and_256_random_bits() -> None:
    first, second = new_secret("evs_x_"), new_secret("evs_x_")
    assert first.startswith("evs_x_") and first != second
    body = first.removeprefix("evs_x_")
    assert len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) == SECRET_BYTES == 32


def test_what_is_kept_is_the_sha256() -> None:
    assert hash_token("evs_x_abc") == hashlib.sha256(b"evs_x_abc").hexdigest()

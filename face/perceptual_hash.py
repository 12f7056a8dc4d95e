"""Perceptual hashes of frames, to recognize a sequence that was submitted before even
after it has been re-encoded.

A 255-bit hash: the signs, against their median, of the 16x16 lowest DCT coefficients of
the frame downscaled to 64x64 grey (the DC term, which says only how bright it is, left
out). Measured on the synthetic videos: a frame re-encoded at JPEG quality 70 stays within
2-6 bits of itself; each frame of a new capture of the same person in the same spot is a
median 4-6 bits from its nearest frame of the earlier capture, so up to ~55% of a new
capture's frames can fall within 4 bits. A sequence is a replay only when most of it does.
A coarser 64-bit hash could not tell the two apart at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

HASH_BYTES = 32


def frame_hash(bgr: NDArray[np.uint8], grey: NDArray[np.uint8] | None = None) -> bytes:
    """The frame's hash; ``grey`` is the frame converted to grey, when the caller has it."""
    if grey is None:
        grey = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:16, :16].flatten()[1:]
    bits = np.append(low > np.median(low), False)  # 255 bits, padded to 256
    return np.packbits(bits).tobytes()


def hamming(a: bytes, b: bytes) -> int:
    return int(np.unpackbits(np.bitwise_xor(_array([a]), _array([b]))).sum())


def _array(hashes: Sequence[bytes]) -> NDArray[np.uint8]:
    return np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(len(hashes), HASH_BYTES)


def share_seen_before(
    hashes: Sequence[bytes], earlier: Sequence[Sequence[bytes]], max_distance: int
) -> tuple[float, int]:
    """The largest share of ``hashes`` that have a near-identical frame in one earlier
    sequence, and which earlier sequence that is (-1 when there is none)."""
    if not hashes:
        return 0.0, -1
    current = _array(hashes)
    best, best_index = 0.0, -1
    for index, sequence in enumerate(earlier):
        if not sequence:
            continue
        previous = _array(sequence)
        xor = np.bitwise_xor(current[:, None, :], previous[None, :, :])
        distances = np.unpackbits(xor, axis=2).sum(axis=2)
        share = float((distances <= max_distance).any(axis=1).mean())
        if share > best:
            best, best_index = share, index
    return best, best_index

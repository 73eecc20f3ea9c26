"""Optional HMAC-SHA256 signatures of model artifacts (key: STREAMSCORE_SIGNING_KEY)."""

from __future__ import annotations

import hashlib
import hmac


def sign(sha256_hex: str, key: str) -> str:
    return hmac.new(key.encode(), sha256_hex.encode(), hashlib.sha256).hexdigest()


def verify(sha256_hex: str, signature: str | None, key: str) -> bool:
    return signature is not None and hmac.compare_digest(sign(sha256_hex, key), signature)

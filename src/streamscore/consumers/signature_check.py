"""The model watcher's signature check: the configured public key, or unverified (said once).

A consumer configured with ``STREAMSCORE_MODEL_PUBLIC_KEY`` (PEM text) or
``STREAMSCORE_MODEL_PUBLIC_KEY_FILE`` accepts only artifacts whose ``signature`` header
verifies against that key (:mod:`streamscore.model.signing`); an artifact without one is
rejected as ``unsigned``, one with a wrong one as ``bad-signature``. Without a key it
accepts every artifact and logs that once, when the check is built.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from streamscore.errors import ConfigError
from streamscore.model.artifact import ModelArtifact
from streamscore.model.keys import fingerprint, load_public_key, load_public_key_file
from streamscore.model.signing import verify
from streamscore.shared.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignatureCheck:
    """``check`` answers None (accepted) or (reason, message) for a rejection."""

    key: Ed25519PublicKey | None

    @classmethod
    def from_settings(cls, settings: Settings) -> SignatureCheck:
        """Load the configured key (ConfigError naming the fix when it is unusable)."""
        key = configured_public_key(settings)
        if key is None:
            log.warning("model signatures are NOT verified: any artifact on %s is accepted; set "
                        "STREAMSCORE_MODEL_PUBLIC_KEY_FILE to the public key of `streamscore keys generate` "
                        "to accept signed models only", settings.models_topic)
        else:
            log.info("accepting only models signed by key %s", fingerprint(key))
        return cls(key)

    def check(self, artifact: ModelArtifact, headers: dict[str, bytes]) -> tuple[str, str] | None:
        if self.key is None:
            return None
        header = headers.get("signature", b"").decode("latin-1")
        if not header:
            return "unsigned", ("the artifact has no signature header; publish it with "
                                "`streamscore publish-model PATH --sign-key PRIVATE.pem`")
        if not verify(artifact, header, self.key):
            named = headers.get("signature-key", b"").decode("latin-1")
            signer = "".join(c for c in named if c in "0123456789abcdef")[:16] or "?"
            return "bad-signature", (f"the signature does not verify with the configured public key "
                                     f"{fingerprint(self.key)} (signed by key {signer})")
        return None


def configured_public_key(settings: Settings) -> Ed25519PublicKey | None:
    text, path = settings.model_public_key, settings.model_public_key_file
    if text and path is not None:
        raise ConfigError("both STREAMSCORE_MODEL_PUBLIC_KEY and STREAMSCORE_MODEL_PUBLIC_KEY_FILE are set: "
                          "keep one of them")
    if text:
        if "\n" not in text and "\\n" in text:  # PEM put on one line with escaped newlines (secret stores)
            text = text.replace("\\n", "\n")
        return load_public_key(text.encode(), "STREAMSCORE_MODEL_PUBLIC_KEY")
    if path is not None:
        return load_public_key_file(path, "STREAMSCORE_MODEL_PUBLIC_KEY_FILE")
    return None

"""Ed25519 signatures of model artifacts: what is signed, signing, verifying.

The signed message (version 1) is these bytes, UTF-8, lines ended by ``\\n``::

    streamscore-model-signature-v1
    weights-sha256:<the weights digest, 64 lower-case hex digits>
    canary-sha256:<sha256 of the canary_pixels array's shape and bytes, or "none">
    manifest:<the manifest as canonical JSON>

* the weights digest is :func:`streamscore.model.artifact.weights_digest`, recomputed by the
  verifier from the arrays (each layer's shape and little-endian float32 bytes);
* canonical JSON is the manifest object as stored in the artifact, with sorted keys, no
  whitespace, ASCII only (``json.dumps(manifest, sort_keys=True, separators=(",", ":"))``);
  it holds name, version, activations, input_scale, layers, the weights ``sha256``,
  metrics, created_at and the canary predictions.

So the signature covers everything a consumer takes from the artifact, and nothing of the
npz container (zip timestamps, compression), so it can be checked again from weights
stored in a database. The ``signature`` header of the models topic carries
``ed25519:<base64 of the 64-byte signature>``; the ``signature-key`` header carries the
signer's :func:`~streamscore.model.keys.fingerprint` (informative only: verification uses
the configured public key, never a key named by the message).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from streamscore.model.artifact import ModelArtifact

DOMAIN = b"streamscore-model-signature-v1\n"
SCHEME = "ed25519:"


def canonical_manifest(manifest: dict[str, object]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def canary_digest(artifact: ModelArtifact) -> str:
    pixels = artifact.canary_pixels
    if pixels is None:
        return "none"
    digest = hashlib.sha256("x".join(str(n) for n in pixels.shape).encode() + b";")
    digest.update(pixels.astype("u1", copy=False).tobytes())
    return digest.hexdigest()


def signed_message(artifact: ModelArtifact) -> bytes:
    """The exact bytes an artifact's signature is over (see the module docstring)."""
    return (DOMAIN + f"weights-sha256:{artifact.sha256}\n".encode()
            + f"canary-sha256:{canary_digest(artifact)}\n".encode()
            + b"manifest:" + canonical_manifest(artifact.manifest))


def sign(artifact: ModelArtifact, key: Ed25519PrivateKey) -> str:
    """The ``signature`` header value for ``artifact`` as it will be read back from the topic.

    Sign the artifact parsed from the bytes that are published (``ModelArtifact.from_bytes``),
    so the manifest signed is the one consumers read.
    """
    return SCHEME + base64.b64encode(key.sign(signed_message(artifact))).decode("ascii")


def verify(artifact: ModelArtifact, header: str | None, key: Ed25519PublicKey) -> bool:
    """True when ``header`` is a valid signature of ``artifact`` by ``key``."""
    if not header or not header.startswith(SCHEME):
        return False
    try:
        signature = base64.b64decode(header.removeprefix(SCHEME), validate=True)
        key.verify(signature, signed_message(artifact))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True

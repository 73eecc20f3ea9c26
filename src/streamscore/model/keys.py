"""Ed25519 key pairs for signing model artifacts: generate, write and load PEM files.

The private key (PKCS#8 PEM, unencrypted, mode 0600) stays where models are published;
every consumer gets only the public key (SubjectPublicKeyInfo PEM). Errors are one-line
:class:`ConfigError` messages that name the fix; they never quote key material.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from streamscore.errors import ConfigError

PRIVATE_FILE = "model-signing.key.pem"
PUBLIC_FILE = "model-signing.pub.pem"
GENERATE_HINT = "create a pair with `streamscore keys generate --out DIR`"


@dataclass(frozen=True)
class KeyFiles:
    private: Path
    public: Path
    fingerprint: str


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """A short public id of a key: the first 16 hex digits of the sha256 of its 32 raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(key: Ed25519PrivateKey) -> str:
    """The public half of ``key`` as PEM text (the value of STREAMSCORE_MODEL_PUBLIC_KEY)."""
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def generate_key_files(out_dir: Path, *, force: bool = False) -> KeyFiles:
    """Write a new pair into ``out_dir``; refuse to overwrite an existing file unless ``force``."""
    private_path, public_path = out_dir / PRIVATE_FILE, out_dir / PUBLIC_FILE
    existing = [p for p in (private_path, public_path) if p.exists()]
    if existing and not force:
        raise ConfigError(f"{existing[0]} already exists: refusing to overwrite a signing key "
                          "(consumers holding its public key would reject new models); use --force to replace it, "
                          "or another --out folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {out_dir}: {exc.strerror}; choose another --out folder") from None
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    private_path.unlink(missing_ok=True)  # O_EXCL below: the mode is 0600 from the first byte
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return KeyFiles(private_path, public_path, fingerprint(key.public_key()))


def _kind(key: object) -> str:
    """RSA, EC, Ed448… from the key's class name."""
    return type(key).__name__.removeprefix("_").removesuffix("PrivateKey").removesuffix("PublicKey") or "unknown"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; {GENERATE_HINT}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}; check the path and its permissions") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The signing key from a PEM file (as written by :func:`generate_key_files`)."""
    data = _read(path, "signing key")
    if b"PUBLIC KEY" in data and b"PRIVATE KEY" not in data:
        raise ConfigError(f"{path} holds a public key; --sign-key takes the private one "
                          f"({PRIVATE_FILE} from `streamscore keys generate`)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"{path} is an encrypted private key; write it unencrypted (mode 0600), "
                          f"or {GENERATE_HINT}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{path} is not a PEM private key; {GENERATE_HINT}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key (it is {_kind(key)}); {GENERATE_HINT}")
    return key


def load_public_key(pem: bytes, source: str) -> Ed25519PublicKey:
    """The verifying key from PEM text; ``source`` names where it came from in error messages."""
    if b"PRIVATE KEY" in pem:
        raise ConfigError(f"{source} holds a private key: consumers take the public key only "
                          f"({PUBLIC_FILE} from `streamscore keys generate`); keep the private key where models "
                          "are published")
    try:
        key = serialization.load_pem_public_key(pem.strip() + b"\n")
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{source} is not a PEM public key (-----BEGIN PUBLIC KEY-----); {GENERATE_HINT}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{source} is not an Ed25519 key (it is {_kind(key)}); {GENERATE_HINT}")
    return key


def load_public_key_file(path: Path, source: str) -> Ed25519PublicKey:
    return load_public_key(_read(path, f"{source} file"), f"{source} ({path})")

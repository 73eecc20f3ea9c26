"""Ed25519 model signatures with real keys written to tmp: files, what is signed, verification, errors."""

from __future__ import annotations

import logging
import stat
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from streamscore.consumers.signature_check import SignatureCheck, configured_public_key
from streamscore.errors import ConfigError
from streamscore.model.artifact import ModelArtifact, build_artifact
from streamscore.model.keys import (
    PRIVATE_FILE,
    PUBLIC_FILE,
    KeyFiles,
    generate_key_files,
    load_private_key,
    load_public_key,
    load_public_key_file,
)
from streamscore.model.signing import DOMAIN, canonical_manifest, sign, signed_message, verify
from streamscore.models import bundled_model
from streamscore.producers.models import signature_headers
from streamscore.shared.config import load_settings


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    return generate_key_files(tmp_path / "keys")


def published(artifact: ModelArtifact) -> ModelArtifact:
    """The artifact as a consumer parses it from the topic."""
    return ModelArtifact.from_bytes(artifact.to_bytes())


def tiny() -> ModelArtifact:
    weights = [np.full((784, 10), 0.5, np.float32)]
    return build_artifact("mlp", 3, weights, [np.zeros(10, np.float32)], ["softmax"])


def test_generate_writes_a_private_file_only_its_owner_reads_and_refuses_to_overwrite(tmp_path: Path) -> None:
    files = generate_key_files(tmp_path / "k")
    assert (files.private.name, files.public.name) == (PRIVATE_FILE, PUBLIC_FILE)
    assert stat.S_IMODE(files.private.stat().st_mode) == 0o600
    assert files.private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert files.public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    with pytest.raises(ConfigError, match=r"already exists.*--force"):
        generate_key_files(tmp_path / "k")
    replaced = generate_key_files(tmp_path / "k", force=True)
    assert replaced.fingerprint != files.fingerprint and len(replaced.fingerprint) == 16
    assert stat.S_IMODE(replaced.private.stat().st_mode) == 0o600


def test_the_signed_bytes_are_domain_weights_digest_canary_digest_and_canonical_manifest() -> None:
    artifact = published(tiny())
    message = signed_message(artifact)
    assert message == (
        b"streamscore-model-signature-v1\n"
        + f"weights-sha256:{artifact.sha256}\n".encode()
        + b"canary-sha256:none\n"
        + b"manifest:" + canonical_manifest(artifact.manifest)
    )
    assert message.startswith(DOMAIN)
    assert canonical_manifest({"b": 1, "a": [1.5, "é"]}) == b'{"a":[1.5,"\\u00e9"],"b":1}'


def test_a_signature_verifies_with_its_public_key_only(keys: KeyFiles, tmp_path: Path) -> None:
    artifact = published(bundled_model(2))
    header = sign(artifact, load_private_key(keys.private))
    assert header.startswith("ed25519:")
    public = load_public_key_file(keys.public, "test")
    assert verify(artifact, header, public)
    other = load_public_key_file(generate_key_files(tmp_path / "other").public, "test")
    assert not verify(artifact, header, other)
    for broken in (None, "", header.removeprefix("ed25519:"), "ed25519:not base64!", "ed25519:AAAA", "hmac:" + header):
        assert not verify(artifact, broken, public)


@pytest.mark.parametrize("change", ["version", "activations", "metrics", "weights", "canary"])
def test_a_signature_covers_every_part_a_consumer_uses(keys: KeyFiles, change: str) -> None:
    artifact = published(bundled_model(2))
    header = sign(artifact, load_private_key(keys.private))
    public = load_public_key_file(keys.public, "test")
    if change == "version":
        tampered = artifact.with_version(artifact.version + 1)
    elif change == "activations":
        relu = ("relu", "softmax")
        tampered = replace(artifact, activations=relu, manifest=artifact.manifest | {"activations": list(relu)})
    elif change == "metrics":
        tampered = replace(artifact, manifest=artifact.manifest | {"metrics": {"acc": 1.0}})
    elif change == "weights":
        tampered = replace(artifact, weights=(artifact.weights[0] * 2, *artifact.weights[1:]))
    else:
        assert artifact.canary_pixels is not None
        tampered = replace(artifact, canary_pixels=artifact.canary_pixels[::-1])
    assert not verify(tampered, header, public)


def test_the_publisher_signs_the_manifest_consumers_read(keys: KeyFiles) -> None:
    artifact = bundled_model(2).with_version(9)
    payload = artifact.to_bytes()
    headers = dict(signature_headers(payload, load_private_key(keys.private)))
    assert headers["signature-key"] == keys.fingerprint.encode()
    check = SignatureCheck(load_public_key_file(keys.public, "test"))
    received = {name: value if isinstance(value, bytes) else b"" for name, value in headers.items()}
    assert check.check(ModelArtifact.from_bytes(payload), received) is None
    reason, message = check.check(ModelArtifact.from_bytes(payload), {}) or ("", "")
    assert reason == "unsigned" and "--sign-key" in message
    forged = dict(received, signature=sign(ModelArtifact.from_bytes(payload),
                                           ed25519.Ed25519PrivateKey.generate()).encode())
    reason, message = check.check(ModelArtifact.from_bytes(payload), forged) or ("", "")
    assert reason == "bad-signature" and keys.fingerprint in message


def pem_of_private(key: object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_key_errors_are_one_line_name_the_fix_and_never_quote_the_key(keys: KeyFiles, tmp_path: Path) -> None:
    secret_body = keys.private.read_text().splitlines()[1]
    cases: list[tuple[object, str]] = []
    with pytest.raises(ConfigError) as missing:
        load_private_key(tmp_path / "nowhere.pem")
    cases.append((missing.value, "does not exist; create a pair with `streamscore keys generate"))
    with pytest.raises(ConfigError) as public_as_private:
        load_private_key(keys.public)
    cases.append((public_as_private.value, "holds a public key; --sign-key takes the private one"))
    with pytest.raises(ConfigError) as private_as_public:
        load_public_key(keys.private.read_bytes(), "STREAMSCORE_MODEL_PUBLIC_KEY")
    cases.append((private_as_public.value, "holds a private key: consumers take the public key only"))
    ec_file = tmp_path / "ec.pem"
    ec_file.write_bytes(pem_of_private(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ConfigError) as wrong_type:
        load_private_key(ec_file)
    cases.append((wrong_type.value, "is not an Ed25519 key (it is EC)"))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError) as unreadable:
        load_private_key(garbage)
    cases.append((unreadable.value, "is not a PEM private key"))
    with pytest.raises(ConfigError) as not_pem:
        load_public_key(b"hello", "STREAMSCORE_MODEL_PUBLIC_KEY")
    cases.append((not_pem.value, "is not a PEM public key"))
    for error, expected in cases:
        text = str(error)
        assert expected in text and "\n" not in text and secret_body not in text


def test_consumer_settings_pick_the_key_from_text_or_file(keys: KeyFiles, caplog: pytest.LogCaptureFixture) -> None:
    pem = keys.public.read_text()
    from_text = configured_public_key(load_settings(model_public_key=pem))
    one_line = configured_public_key(load_settings(model_public_key=pem.replace("\n", "\\n")))
    from_file = configured_public_key(load_settings(model_public_key_file=str(keys.public)))
    assert from_text is not None and one_line is not None and from_file is not None
    assert from_text.public_bytes_raw() == one_line.public_bytes_raw() == from_file.public_bytes_raw()
    with pytest.raises(ConfigError, match="keep one of them"):
        configured_public_key(load_settings(model_public_key=pem, model_public_key_file=str(keys.public)))
    caplog.set_level(logging.INFO)
    assert SignatureCheck.from_settings(load_settings()).check(published(tiny()), {}) is None
    unverified = [r for r in caplog.records if "NOT verified" in r.getMessage()]
    assert len(unverified) == 1 and unverified[0].levelno == logging.WARNING
    assert pem.splitlines()[1] not in caplog.text, "key material never in the logs"


def test_the_old_hmac_key_is_refused_with_its_replacement_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSCORE_SIGNING_KEY", "team-secret")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "STREAMSCORE_SIGNING_KEY" in refused.value.message and "keys generate" in refused.value.message
    assert "team-secret" not in refused.value.message


def test_every_worker_gets_the_public_key(keys: KeyFiles) -> None:
    from streamscore.consumers.workers import worker_env

    env = worker_env(load_settings(model_public_key_file=str(keys.public)), 1, base={})
    assert env["STREAMSCORE_MODEL_PUBLIC_KEY_FILE"] == str(keys.public.resolve())
    assert "STREAMSCORE_MODEL_PUBLIC_KEY" not in worker_env(load_settings(), 0, base={})

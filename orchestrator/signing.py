"""Optional ed25519 signatures over a run's ``manifest_sha256`` (docs/evidence.md).

With ``[signing] private_key`` set, the seal of every finished run signs the message
``codex-orchestrator manifest v1\\n<task>\\n<run>\\n<manifest_sha256>\\n`` and records the
signature beside the digest in the history entry and the metrics line (``manifest_signature``:
``alg``, ``key_id``, ``signature`` in base64). ``verify`` checks it with ``[signing] public_key``
(else the public half of ``private_key``) against the digest of the manifest as it is now, so a
forger who recomputes the digests still needs the private key.

Keys are PEM files (``openssl genpkey -algorithm ed25519``), kept outside the runs and out
folders (a key there is refused: whoever can edit the runs could read it). Needs the
``cryptography`` package (``pip install 'codex-orchestrator[sign]'``).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from orchestrator.kernel import Kernel

SIGNATURE_FIELD = "manifest_signature"
ALGORITHM = "ed25519"


def message(task_id: str, run_id: str, digest: str) -> bytes:
    return f"codex-orchestrator manifest v1\n{task_id}\n{run_id}\n{digest}\n".encode()


def _configured(kernel: Kernel, key: str) -> Path | None:
    from orchestrator.config.model import SigningConfig

    settings = kernel.config.settings.signing
    if getattr(settings, key) is None:
        return None
    resolved = kernel.config._resolve_paths("signing", SigningConfig, settings.model_dump())
    path = Path(resolved[key]).resolve()
    for folder in (kernel.config.runs_dir, kernel.config.out_dir):
        real = folder.resolve()
        if path == real or real in path.parents:
            raise ConfigError(
                f"[signing] {key} {path} is inside {folder}: keep the key outside the runs "
                "and out folders (whoever can edit runs could read it there)"
            )
    return path


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise ConfigError(
            "[signing] needs the cryptography package: pip install 'codex-orchestrator[sign]'"
        ) from None
    return serialization


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"[signing] {what} {path} cannot be read: {exc.strerror}") from None


def private_key(kernel: Kernel) -> Any | None:
    path = _configured(kernel, "private_key")
    if path is None:
        return None
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(_read(path, "private_key"), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[signing] private_key {path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"[signing] private_key {path} is not an ed25519 key")
    return key


def public_key(kernel: Kernel) -> Any | None:
    """The key ``verify`` checks with: ``public_key``, else the public half of ``private_key``."""
    path = _configured(kernel, "public_key")
    if path is None:
        secret = private_key(kernel)
        return secret.public_key() if secret is not None else None
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(_read(path, "public_key"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[signing] public_key {path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"[signing] public_key {path} is not an ed25519 key")
    return key


def key_id(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signature_record(kernel: Kernel, task_id: str, run_id: str, digest: str) -> dict[str, str]:
    """The ``manifest_signature`` value for a sealed run; {} when signing is not configured."""
    key = private_key(kernel)
    if key is None:
        return {}
    signature = key.sign(message(task_id, run_id, digest))
    return {
        "alg": ALGORITHM,
        "key_id": key_id(key.public_key()),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def problem(key: Any, record: Any, task_id: str, run_id: str, digest: str) -> str | None:
    """Why ``record`` (a ``manifest_signature``) does not prove ``digest``, or None."""
    from cryptography.exceptions import InvalidSignature

    if not isinstance(record, dict) or not record.get("signature"):
        return "carries no signature (signing is configured for verify)"
    if record.get("key_id") != key_id(key):
        return f"was signed by key {record.get('key_id')}, not by the configured {key_id(key)}"
    try:
        key.verify(base64.b64decode(record["signature"]), message(task_id, run_id, digest))
    except (InvalidSignature, ValueError):
        return "signature does not match the manifest as it is now (edited or forged)"
    return None

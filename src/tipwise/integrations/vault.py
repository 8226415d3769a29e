"""The token vault: credentials of connections, sealed with a key derived from the installation's secret.

A calendar feed's secret address is a credential: whoever has it reads the
calendar. It is stored only sealed (AES-256-GCM) under a key derived with
HKDF-SHA256 from `TIPWISE_SECRET_KEY` (or the generated key file), with the
connection and user ids as associated data, so a sealed value cannot be moved
to another row. A copy of the database alone does not reveal any address;
changing the secret key makes the stored addresses unreadable (their
connections then report an error and must be added again).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
_INFO = b"tipwise.integrations.vault/v1"


class VaultError(ValueError):
    """A sealed value does not open: the secret key changed, or the value was moved or altered."""


class Vault:
    def __init__(self, *, secret_key: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, context: bytes) -> bytes:
        """Return nonce + ciphertext of `plaintext`, bound to `context`."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), context)

    def open(self, sealed: bytes, *, context: bytes) -> str:
        """Return the plaintext of `sealed`; raise VaultError when it does not open with `context`."""
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context).decode()
        except (InvalidTag, ValueError):
            raise VaultError("the stored credential does not open with this installation's secret key") from None

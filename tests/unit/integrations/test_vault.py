"""The vault seals credentials so that only this installation, for this row, opens them."""

from __future__ import annotations

import pytest

from tipwise.integrations import Vault
from tipwise.integrations.vault import VaultError

KEY = "a-secret-key-of-this-installation-32b"
URL = "https://calendar.example.com/ical/secret-token/basic.ics"


class TestVault:
    def test_a_sealed_value_opens_with_the_same_key_and_context(self) -> None:
        sealed = Vault(secret_key=KEY).seal(URL, context=b"row-1")
        assert URL.encode() not in sealed
        assert b"secret-token" not in sealed
        assert Vault(secret_key=KEY).open(sealed, context=b"row-1") == URL

    def test_two_seals_of_the_same_value_differ(self) -> None:
        vault = Vault(secret_key=KEY)
        assert vault.seal(URL, context=b"row-1") != vault.seal(URL, context=b"row-1")

    def test_another_rows_context_or_another_key_does_not_open_it(self) -> None:
        sealed = Vault(secret_key=KEY).seal(URL, context=b"row-1")
        with pytest.raises(VaultError):
            Vault(secret_key=KEY).open(sealed, context=b"row-2")
        with pytest.raises(VaultError):
            Vault(secret_key=KEY + "-rotated").open(sealed, context=b"row-1")
        with pytest.raises(VaultError):
            Vault(secret_key=KEY).open(sealed[:-1] + bytes([sealed[-1] ^ 1]), context=b"row-1")

"""Accounts on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher

from tipwise.auth import Role
from tipwise.auth.service import AccountService
from tipwise.kernel.db import Database
from tipwise.kernel.errors import Conflict, Unauthorized

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def accounts() -> AccountService:
    return AccountService(hasher=PasswordHasher(time_cost=1, memory_cost=64))


def _hash(accounts: AccountService, password: str) -> str:
    return accounts.hash_password(password)


class TestAccounts:
    def test_register_then_authenticate_with_a_normalized_email(
        self, migrated: Database, accounts: AccountService
    ) -> None:
        with migrated.write() as session:
            created = accounts.register(
                session, email=" Lin@Example.org ", password_hash=_hash(accounts, "a long password"), now=T0
            )
        with migrated.read() as session:
            found = accounts.authenticate(session, email="lin@example.ORG", password="a long password")
            assert accounts.get(session, created.id) == found
        assert found.email == "lin@example.org"
        assert found.role is Role.USER
        assert found.created_at == T0

    def test_passwords_are_stored_as_argon2id_hashes(self, migrated: Database, accounts: AccountService) -> None:
        from sqlalchemy import text

        with migrated.write() as session:
            accounts.register(
                session, email="hash@example.org", password_hash=_hash(accounts, "a long password"), now=T0
            )
        with migrated.read() as session:
            stored = session.execute(text("SELECT password_hash FROM auth_user")).scalar_one()
        assert stored.startswith("$argon2id$")
        assert "a long password" not in stored

    def test_duplicate_email_and_wrong_password_are_refused(self, migrated: Database, accounts: AccountService) -> None:
        with migrated.write() as session:
            accounts.register(
                session, email="dup@example.org", password_hash=_hash(accounts, "a long password"), now=T0
            )
        with pytest.raises(Conflict), migrated.write() as session:
            accounts.register(
                session, email="DUP@example.org", password_hash=_hash(accounts, "another password"), now=T0
            )
        with pytest.raises(Unauthorized), migrated.read() as session:
            accounts.authenticate(session, email="dup@example.org", password="not it at all")

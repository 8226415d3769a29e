"""Crypto-shredding: every event payload about a person is sealed with that person's data key.

`publish` seals the payload of an event whose subject is a person (a user id; `system:*` subjects
stay clear) with AES-256-GCM under the subject's key, with the event id as associated data, so a
payload cannot be moved onto another event. Readers open payloads where the bus hands events out.
Erasing a person deletes their key row: every copy of their payloads (the outbox, the log, NATS
streams, backups of those) becomes unreadable, and readers skip those events.

Keys are cached per process (a small LRU) for readers only; `forget` drops a subject from the cache,
and the buses call it when a `user.deleted` event passes, so another process stops using a key
that is gone. Writers always read the key in their own transaction: a key cached from a
transaction that rolled back would seal payloads nobody can open.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tipwise.events.contracts import Event
from tipwise.events.models import DataKeyRow

NONCE_BYTES = 12
KEY_BYTES = 32
CACHE_SIZE = 1024


def is_person(subject: str) -> bool:
    """Return whether `subject` names a person (a user id) rather than a system component."""
    try:
        UUID(subject)
    except ValueError:
        return False
    return True


class _KeyCache:
    def __init__(self, size: int) -> None:
        self._size = size
        # By (database, subject): tests, and tools, open several databases in one process.
        self._keys: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, database: str, subject: str) -> bytes | None:
        with self._lock:
            key = self._keys.get((database, subject))
            if key is not None:
                self._keys.move_to_end((database, subject))
            return key

    def put(self, database: str, subject: str, key: bytes) -> None:
        with self._lock:
            self._keys[(database, subject)] = key
            self._keys.move_to_end((database, subject))
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)

    def forget(self, subject: str) -> None:
        with self._lock:
            for cached in [k for k in self._keys if k[1] == subject]:
                del self._keys[cached]


_cache = _KeyCache(CACHE_SIZE)


def forget(subjects: Iterable[str]) -> None:
    """Drop the cached keys of `subjects` in this process."""
    for subject in subjects:
        _cache.forget(subject)


_KEY_OF = select(DataKeyRow.key).where(DataKeyRow.subject == bindparam("subject"))
# The subjects whose key a session's transaction created: such a key is not committed yet.
_CREATED = "tipwise.created_data_keys"


def _committed(session: Session, subject: str) -> bool:
    """Whether a key of `subject` this session reads is committed (not created by its own open transaction)."""
    return subject not in session.info.get(_CREATED, ())


def key_for(session: Session, subject: str, *, now: datetime) -> bytes:
    """Return the data key of `subject`, creating it in the caller's transaction when it has none.

    A key read from the database was committed, so it is cached (it is on every decision's path);
    a key this transaction creates is not, as the transaction may yet roll back. A cached key
    that an erasure in another process deleted seals payloads nobody can open any more: the
    same as shredded, as they should be.
    """
    database = _database(session)
    cached = _cache.get(database, subject)
    if cached is not None:
        return cached
    existing = session.scalar(_KEY_OF, {"subject": subject})
    if existing is not None:
        if _committed(session, subject):
            _cache.put(database, subject, existing)
        return existing
    values = {"subject": subject, "key": AESGCM.generate_key(bit_length=KEY_BYTES * 8), "created_at": now}
    dialect = session.get_bind().dialect.name
    # Two transactions may create the first key of a person at once: the second keeps the first's.
    if dialect == "postgresql":
        session.execute(postgresql.insert(DataKeyRow).values(values).on_conflict_do_nothing())
    else:
        session.execute(sqlite.insert(DataKeyRow).values(values).on_conflict_do_nothing())
    session.info.setdefault(_CREATED, set()).add(subject)
    key = session.scalar(select(DataKeyRow.key).where(DataKeyRow.subject == subject))
    if key is None:  # pragma: no cover - the insert or the other transaction wrote it
        raise RuntimeError(f"no data key for {subject!r} after creating it")
    return key


def seal(key: bytes, event: Event) -> bytes:
    """Return the sealed payload of `event`: nonce + AES-GCM ciphertext, the event id as associated data."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, event.payload, event.id.bytes)


def unseal(key: bytes, event: Event) -> bytes:
    """Return the plain payload of a sealed event; raises cryptography's InvalidTag when it does not open."""
    return AESGCM(key).decrypt(event.payload[:NONCE_BYTES], event.payload[NONCE_BYTES:], event.id.bytes)


def reveal(session: Session, batch: Sequence[Event]) -> tuple[list[Event], int]:
    """Return the events of `batch` with their payloads opened, and how many were skipped as shredded.

    An event whose subject's key is gone (the person was erased) or does not open is left out.
    """
    sealed = {event.subject for event in batch if event.encrypted}
    # Read from the database, never from the cache: an erasure in another process deletes a key
    # this process may still hold, and a consumer lagging behind it must find the person's events
    # shredded (one query per batch).
    keys: dict[str, bytes] = {}
    if sealed:
        rows = session.execute(select(DataKeyRow.subject, DataKeyRow.key).where(DataKeyRow.subject.in_(sealed)))
        keys = {subject: key for subject, key in rows}
    # One cipher per person in the batch, not one per event.
    ciphers = {subject: AESGCM(key) for subject, key in keys.items()}
    opened: list[Event] = []
    skipped = 0
    for event in batch:
        if not event.encrypted:
            opened.append(event)
            continue
        cipher = ciphers.get(event.subject)
        if cipher is None:
            skipped += 1
            continue
        box = event.payload
        try:
            payload = cipher.decrypt(box[:NONCE_BYTES], box[NONCE_BYTES:], event.id.bytes)
        except InvalidTag:
            skipped += 1
            continue
        # The constructor, not dataclasses.replace: several times cheaper, and this runs per event.
        opened.append(
            Event(
                id=event.id,
                type=event.type,
                subject=event.subject,
                time=event.time,
                schema_version=event.schema_version,
                payload=payload,
                trace_id=event.trace_id,
            )
        )
    return opened, skipped


def _database(session: Session) -> str:
    engine = session.get_bind().engine
    name = _names.get(engine)
    if name is None:
        name = _names[engine] = engine.url.render_as_string(hide_password=True)
    return name


_names: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def erase(session: Session, subject: str) -> int:
    """Delete the data key of `subject` in the caller's transaction; return how many keys went (0 or 1)."""
    _cache.forget(subject)
    result = session.execute(delete(DataKeyRow).where(DataKeyRow.subject == subject))
    return int(getattr(result, "rowcount", 0) or 0)


def has_key(session: Session, subject: str) -> bool:
    return session.scalar(select(DataKeyRow.subject).where(DataKeyRow.subject == subject)) is not None

"""Sealing event payloads: AES-256-GCM under the subject's key, bound to the event id."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tipwise import events
from tipwise.events import shredding
from tipwise.kernel.ids import new_id


def _decided(subject: str) -> events.Event:
    return events.Event.create(
        type=events.TIP_DECIDED,
        subject=subject,
        time=datetime(2026, 11, 26, tzinfo=UTC),
        data={"tip_instance_id": str(new_id())},
    )


class TestSealing:
    def test_a_sealed_payload_opens_with_the_key_and_hides_the_plain_bytes(self) -> None:
        key = AESGCM.generate_key(bit_length=256)
        event = _decided(str(new_id()))
        sealed = shredding.seal(key, event)
        assert event.payload not in sealed
        assert shredding.unseal(key, replace(event, payload=sealed, encrypted=True)) == event.payload

    def test_another_key_or_another_event_id_does_not_open_it(self) -> None:
        key = AESGCM.generate_key(bit_length=256)
        event = _decided(str(new_id()))
        sealed = replace(event, payload=shredding.seal(key, event), encrypted=True)
        with pytest.raises(InvalidTag):
            shredding.unseal(AESGCM.generate_key(bit_length=256), sealed)
        # The event id is the associated data: a payload moved onto another event does not open.
        with pytest.raises(InvalidTag):
            shredding.unseal(key, replace(sealed, id=new_id()))

    def test_a_sealed_event_refuses_to_decode_its_payload(self) -> None:
        event = _decided(str(new_id()))
        with pytest.raises(ValueError, match="sealed"):
            replace(event, encrypted=True).message()

    def test_the_envelope_carries_the_encrypted_flag(self) -> None:
        event = replace(_decided(str(new_id())), encrypted=True)
        assert events.Event.from_envelope(event.to_envelope()).encrypted
        assert not events.Event.from_envelope(_decided("system:x").to_envelope()).encrypted

    @pytest.mark.parametrize(
        ("subject", "person"),
        [(str(new_id()), True), ("system:learner", False), ("user-1", False), ("", False)],
    )
    def test_only_user_ids_are_people(self, subject: str, person: bool) -> None:
        assert shredding.is_person(subject) is person

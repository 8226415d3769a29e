"""Event payloads are Protobuf messages; the dict API and the typed API give the same events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest
from google.protobuf.message import Message

from tipwise import events
from tipwise.events.contracts import PAYLOAD_TYPES
from tipwise.recommender import FeedbackReaction, TipDecided
from tipwise.recommender.domain.reactions import Reaction

NOW = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC)
USER = UUID("8597d90a-b99f-43c4-953f-af5e044e5619")
INSTANCE = UUID("e286c084-1a63-4049-a78e-112c6cb75da5")

# One payload per event type, in the dict form producers write (and `data()` returns).
PAYLOADS: dict[str, dict[str, Any]] = {
    events.SIGNAL_RECEIVED: {
        "user_id": str(USER),
        "source": "calendar",
        "kind": "gap",
        "observed_at": NOW.isoformat(),
        "values": {"minutes": 45.0, "busy": False, "title_hash": "ab12", "heart_rate": [61.0, 64.5], "none": None},
    },
    events.TIP_DECIDED: {
        "tip_instance_id": str(INSTANCE),
        "user_id": str(USER),
        "tip_id": "movement-walk",
        "policy": "linucb",
        # Beyond 2**53: json_format would turn an int64 into a string, this must stay an exact int.
        "model_version": 2**60 + 1,
        "feature_spec": "f1",
        "shared": {"hour_sin": 0.5, "bias": 1.0, "weekday": 0.0},
        "action": {"effort_low": 1.0, "minutes": 0.1 + 0.2},
        "propensity": 0.05,
        "decided_at": NOW.isoformat(),
        "personalized": False,
        "model_training": True,
    },
    events.TIP_DELIVERED: {
        "tip_instance_id": str(INSTANCE),
        "user_id": str(USER),
        "channel": "web_push",
        "delivered_at": NOW.isoformat(),
    },
    events.FEEDBACK_REACTION: {
        "tip_instance_id": str(INSTANCE),
        "user_id": str(USER),
        "reaction": "not_for_me",
        "reacted_at": NOW.isoformat(),
        "learnable": False,
    },
    events.CONSENT_CHANGED: {
        "user_id": str(USER),
        "purpose": "personalization",
        "granted": False,
        "wording_version": "2026-11-v2",
        "changed_at": NOW.isoformat(),
        "source": "web",
    },
    events.USER_DELETED: {"user_id": str(USER), "deleted_at": NOW.isoformat()},
    events.REWARD_DEFAULTED: {"tip_instance_id": str(INSTANCE)},
    events.PREFERENCES_CHANGED: {
        "user_id": str(USER),
        "changed": ["quiet_hours", "timezone"],
        "preferences": {"timezone": "Europe/Berlin", "quiet_hours": {"start": "22:00", "end": "07:00"}},
    },
}

# The same payloads built as messages: the typed path.
MESSAGES: dict[str, Message] = {
    events.SIGNAL_RECEIVED: events.messages.SignalReceived(user_id=str(USER), source="calendar", kind="gap"),
    events.TIP_DECIDED: events.messages.TipDecided(
        tip_instance_id=str(INSTANCE),
        user_id=str(USER),
        tip_id="movement-walk",
        policy="linucb",
        model_version=2**60 + 1,
        feature_spec="f1",
        shared={"hour_sin": 0.5, "bias": 1.0, "weekday": 0.0},
        action={"effort_low": 1.0, "minutes": 0.1 + 0.2},
        propensity=0.05,
        personalized=False,
        model_training=True,
    ),
    events.TIP_DELIVERED: events.messages.TipDelivered(
        tip_instance_id=str(INSTANCE), user_id=str(USER), channel="web_push"
    ),
    events.FEEDBACK_REACTION: events.messages.FeedbackReaction(
        tip_instance_id=str(INSTANCE),
        user_id=str(USER),
        reaction=events.messages.Reaction.REACTION_NOT_FOR_ME,
        learnable=False,
    ),
    events.CONSENT_CHANGED: events.messages.ConsentChanged(
        user_id=str(USER), purpose="personalization", granted=False, wording_version="2026-11-v2", source="web"
    ),
    events.USER_DELETED: events.messages.UserDeleted(user_id=str(USER)),
    events.REWARD_DEFAULTED: events.messages.RewardDefaulted(tip_instance_id=str(INSTANCE)),
    events.PREFERENCES_CHANGED: events.messages.PreferencesChanged(
        user_id=str(USER), changed=["quiet_hours", "timezone"]
    ),
}
TIMESTAMP_FIELDS = {
    events.SIGNAL_RECEIVED: "observed_at",
    events.TIP_DECIDED: "decided_at",
    events.TIP_DELIVERED: "delivered_at",
    events.FEEDBACK_REACTION: "reacted_at",
    events.CONSENT_CHANGED: "changed_at",
    events.USER_DELETED: "deleted_at",
}


def _typed(kind: str) -> Message:
    """Return the message of `kind` equal to PAYLOADS[kind], built field by field."""
    message = events.payload_type(kind)()
    message.CopyFrom(MESSAGES[kind])
    if kind in TIMESTAMP_FIELDS:
        getattr(message, TIMESTAMP_FIELDS[kind]).FromDatetime(NOW)
    if isinstance(message, events.messages.SignalReceived):
        message.values.update(PAYLOADS[kind]["values"])
    if isinstance(message, events.messages.PreferencesChanged):
        message.preferences.update(PAYLOADS[kind]["preferences"])
    return message


def _event(type: str, **fields: Any) -> events.Event:
    return events.Event.create(type=type, subject=str(USER), time=NOW, **fields)


def test_every_event_type_has_a_payload_example() -> None:
    assert (
        set(PAYLOADS)
        == set(MESSAGES)
        == {
            events.SIGNAL_RECEIVED,
            events.TIP_DECIDED,
            events.TIP_DELIVERED,
            events.FEEDBACK_REACTION,
            events.CONSENT_CHANGED,
            events.USER_DELETED,
            events.REWARD_DEFAULTED,
            events.PREFERENCES_CHANGED,
        }
        == set(PAYLOAD_TYPES)
    )


@pytest.mark.parametrize("type", sorted(PAYLOADS))
class TestEveryEventType:
    def test_a_dict_payload_comes_back_as_the_same_dict(self, type: str) -> None:
        assert _event(type, data=PAYLOADS[type]).data() == PAYLOADS[type]

    def test_the_payload_is_the_serialized_message_of_the_type(self, type: str) -> None:
        event = _event(type, data=PAYLOADS[type])
        decoded = events.payload_type(type).FromString(event.payload)
        assert decoded == _typed(type)
        assert event.message() == _typed(type)

    def test_a_typed_payload_equals_the_dict_payload_byte_for_byte(self, type: str) -> None:
        typed = _event(type, message=_typed(type))
        assert typed.payload == _event(type, data=PAYLOADS[type]).payload
        assert typed.data() == PAYLOADS[type]
        assert typed.message(events.payload_type(type)) == _typed(type)

    def test_an_empty_dict_gives_every_field_at_its_default(self, type: str) -> None:
        data = _event(type, data={}).data()
        # `optional` fields have presence: unset, they are left out, and readers default them.
        optional = {
            f.name for f in events.payload_type(type).DESCRIPTOR.fields if f.has_presence and f.message_type is None
        }
        assert set(data) == set(PAYLOADS[type]) - optional
        assert all(value in ("", 0, 0.0, False, {}, [], None, "unspecified") for value in data.values())

    def test_the_envelope_round_trips_every_field(self, type: str) -> None:
        event = _event(type, data=PAYLOADS[type], trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
        back = events.Event.from_envelope(event.to_envelope())
        assert back == event
        assert back.time.tzinfo is not None
        assert back.data() == PAYLOADS[type]


class TestDictForm:
    def test_map_keys_come_back_sorted_as_the_json_payloads_had_them(self) -> None:
        data = _event(events.TIP_DECIDED, data=PAYLOADS[events.TIP_DECIDED]).data()
        assert list(data["shared"]) == ["bias", "hour_sin", "weekday"]
        assert list(data) == sorted(data)

    def test_floats_stay_floats_and_exact(self) -> None:
        data = _event(events.TIP_DECIDED, data={"shared": {"a": 1}, "action": {"b": 0.1 + 0.2}, "propensity": 1}).data()
        assert data["shared"] == {"a": 1.0}
        assert type(data["shared"]["a"]) is float
        assert data["action"]["b"] == 0.30000000000000004
        assert type(data["propensity"]) is float

    def test_numbers_in_a_struct_come_back_as_floats_and_its_keys_sorted(self) -> None:
        values = {"z": {"b": 2, "a": None}, "samples": [1, 2.5, -0.125], "ok": True, "name": "gap"}
        data = _event(events.SIGNAL_RECEIVED, data={"values": values}).data()
        assert data["values"] == values
        assert list(data["values"]) == ["name", "ok", "samples", "z"]
        assert list(data["values"]["z"]) == ["a", "b"]
        assert [type(x) for x in data["values"]["samples"]] == [float, float, float]
        assert type(data["values"]["z"]["b"]) is float
        assert data["values"]["ok"] is True

    def test_a_struct_that_is_not_json_fails_naming_the_field(self) -> None:
        with pytest.raises(events.PayloadError, match=r"SignalReceived\.values: .*unexpected type"):
            _event(events.SIGNAL_RECEIVED, data={"values": {"at": NOW}})
        with pytest.raises(events.PayloadError, match=r"SignalReceived\.values: Struct must be in a dict"):
            _event(events.SIGNAL_RECEIVED, data={"values": [1.0]})

    def test_uuids_datetimes_and_numpy_numbers_are_accepted_as_the_json_encoder_accepted_them(self) -> None:
        data = {
            "tip_instance_id": INSTANCE,
            "decided_at": NOW,
            "model_version": np.int64(7),
            "shared": {"bias": np.float64(1.5)},
            "propensity": np.float32(0.25),
        }
        out = _event(events.TIP_DECIDED, data=data).data()
        assert out["tip_instance_id"] == str(INSTANCE)
        assert out["decided_at"] == NOW.isoformat()
        assert out["model_version"] == 7
        assert out["shared"] == {"bias": 1.5}
        assert out["propensity"] == 0.25

    def test_a_time_in_another_zone_comes_back_as_the_same_instant_in_utc(self) -> None:
        paris = timezone(timedelta(hours=1))
        out = _event(events.USER_DELETED, data={"deleted_at": datetime(2026, 11, 26, 10, 30, tzinfo=paris)}).data()
        assert out["deleted_at"] == "2026-11-26T09:30:00+00:00"

    def test_every_reaction_maps_to_its_enum_value_and_back(self) -> None:
        for reaction in Reaction:
            data = {**PAYLOADS[events.FEEDBACK_REACTION], "reaction": reaction}
            event = _event(events.FEEDBACK_REACTION, data=data)
            assert event.data()["reaction"] == reaction.value
            assert FeedbackReaction.from_message(event.message(events.messages.FeedbackReaction)).reaction is reaction


class TestRefusals:
    def test_an_unknown_event_type_fails_at_create_naming_the_known_ones(self) -> None:
        with pytest.raises(events.UnknownEventType, match=r"unknown event type 'tip\.exploded'; known: consent"):
            _event("tip.exploded", data={})

    def test_a_key_the_message_lacks_fails_naming_it(self) -> None:
        with pytest.raises(events.PayloadError, match=r"TipDecided has no field 'n'"):
            _event(events.TIP_DECIDED, data={"n": 1})

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"model_version": "3"}, "model_version"),
            ({"model_version": 1.5}, "model_version"),
            ({"propensity": "0.5"}, "propensity"),
            ({"tip_id": 3}, "tip_id"),
            ({"shared": [1.0]}, "shared"),
            ({"shared": {"a": "x"}}, "shared"),
            ({"decided_at": "2026-11-26T09:00:00"}, "decided_at"),
        ],
    )
    def test_a_value_of_the_wrong_type_fails_naming_the_field(self, data: dict[str, Any], field: str) -> None:
        with pytest.raises(events.PayloadError, match=rf"TipDecided\.{field}: "):
            _event(events.TIP_DECIDED, data=data)

    def test_an_unknown_reaction_fails_naming_the_known_ones(self) -> None:
        with pytest.raises(events.PayloadError, match=r"reaction: expected one of \['dismiss', 'done'"):
            _event(events.FEEDBACK_REACTION, data={"reaction": "meh"})

    def test_a_bool_is_not_taken_for_a_number(self) -> None:
        with pytest.raises(events.PayloadError, match="propensity"):
            _event(events.TIP_DECIDED, data={"propensity": True})

    def test_a_message_of_another_type_is_refused(self) -> None:
        with pytest.raises(TypeError, match=r"'tip\.decided' event carries tipwise\.events\.v1\.TipDecided, not"):
            _event(events.TIP_DECIDED, message=events.messages.RewardDefaulted())

    def test_reading_the_payload_as_another_type_is_refused(self) -> None:
        event = _event(events.REWARD_DEFAULTED, data={})
        with pytest.raises(TypeError, match=r"carries tipwise\.events\.v1\.RewardDefaulted, not"):
            event.message(events.messages.TipDecided)

    def test_data_and_message_together_are_refused(self) -> None:
        with pytest.raises(TypeError, match="exactly one of data= and message="):
            _event(events.REWARD_DEFAULTED, data={}, message=events.messages.RewardDefaulted())

    def test_a_naive_event_time_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            events.Event.create(type=events.USER_DELETED, subject="u", time=datetime(2026, 1, 1), data={})

    def test_bytes_that_are_not_an_envelope_are_refused(self) -> None:
        with pytest.raises(ValueError, match="not an event envelope"):
            events.Event.from_envelope(b"\xff\xff\xff")
        with pytest.raises(ValueError, match="no type or no time"):
            events.Event.from_envelope(events.messages.Envelope(id=str(uuid4())).SerializeToString())
        bad_id = events.messages.Envelope(id="nope", type=events.USER_DELETED)
        bad_id.time.FromDatetime(NOW)
        with pytest.raises(ValueError, match="id 'nope' is not a UUID"):
            events.Event.from_envelope(bad_id.SerializeToString())

    def test_an_envelope_of_a_type_this_version_does_not_know_is_read_but_its_payload_is_not(self) -> None:
        envelope = events.messages.Envelope(id=str(uuid4()), type="tip.from_the_future", payload=b"\x08\x01")
        envelope.time.FromDatetime(NOW)
        event = events.Event.from_envelope(envelope.SerializeToString())
        assert event.type == "tip.from_the_future"
        with pytest.raises(events.UnknownEventType):
            event.data()


class TestRecommenderPayloads:
    def test_tip_decided_survives_the_typed_path_exactly(self) -> None:
        decided = TipDecided(
            tip_instance_id=INSTANCE,
            user_id=USER,
            tip_id="movement-walk",
            policy="linucb",
            model_version=12,
            feature_spec="f1",
            shared={"weekday": 0.2, "bias": 1.0},
            action={"minutes": 1 / 3},
            propensity=0.1 + 0.2,
            decided_at=NOW,
        )
        event = _event(events.TIP_DECIDED, message=decided.to_message())
        back = TipDecided.from_message(event.message(events.messages.TipDecided))
        assert back == decided
        assert list(back.shared) == ["bias", "weekday"]
        assert TipDecided.from_data(event.data()) == decided
        assert event.payload == _event(events.TIP_DECIDED, data=decided.to_data()).payload

    def test_feedback_reaction_survives_the_typed_path_exactly(self) -> None:
        reaction = FeedbackReaction(tip_instance_id=INSTANCE, user_id=USER, reaction=Reaction.SNOOZE, reacted_at=NOW)
        event = _event(events.FEEDBACK_REACTION, message=reaction.to_message())
        assert FeedbackReaction.from_message(event.message(events.messages.FeedbackReaction)) == reaction
        assert FeedbackReaction.from_data(event.data()) == reaction
        assert event.data() == reaction.to_data()

    def test_a_reaction_without_a_value_is_refused_when_read(self) -> None:
        data = {**PAYLOADS[events.FEEDBACK_REACTION], "reaction": "unspecified"}
        event = _event(events.FEEDBACK_REACTION, data=data)
        with pytest.raises(ValueError, match="no known reaction"):
            FeedbackReaction.from_message(event.message(events.messages.FeedbackReaction))


class TestTimestamps:
    @pytest.mark.parametrize(
        "moment",
        [
            NOW,
            datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
            datetime(2026, 3, 29, 2, 30, 0, 1, tzinfo=timezone(timedelta(hours=-7))),
        ],
    )
    def test_a_datetime_becomes_the_timestamp_protobuf_computes_and_back(self, moment: datetime) -> None:
        reference = events.messages.UserDeleted().deleted_at
        reference.FromDatetime(moment)
        assert events.to_timestamp(moment) == reference
        assert events.from_timestamp(reference) == moment
        assert events.from_timestamp(reference).tzinfo is UTC

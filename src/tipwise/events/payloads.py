"""Convert event payload messages to and from the plain dicts of `Event.create(data=...)` / `Event.data()`.

The dict form is the one producers wrote before payloads were Protobuf, so
code written against dicts keeps working. It is driven by the message
descriptor, not by `google.protobuf.json_format`, whose JSON mapping differs
from those dicts: here 64-bit integers stay `int` (not strings), fields at
their default value are present (not omitted), timestamps are ISO 8601 strings
as `datetime.isoformat()` writes them in UTC (`...+00:00`, not `...Z`), map
keys come out sorted (as the JSON payloads had them), and an enum value is its
name without the enum's prefix, in lower case (`REACTION_NOT_FOR_ME` is
`"not_for_me"`).

Going in, values are checked against the field's type, and a key the message
lacks is an error naming it, so a payload never silently loses data. A missing
key leaves the field at its default. Like the JSON encoder before, the input
may hold a `UUID` where a string is expected, a `datetime` where a timestamp
is, and numpy numbers.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast
from uuid import UUID

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import ListValue, Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

_STRUCT_TYPES = frozenset({Struct.DESCRIPTOR.full_name, ListValue.DESCRIPTOR.full_name, Value.DESCRIPTOR.full_name})
_TIMESTAMP = Timestamp.DESCRIPTOR.full_name
_INTEGERS = frozenset(
    {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT32}
    | {FieldDescriptor.CPPTYPE_UINT64}
)
_FLOATS = frozenset({FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT})


class PayloadError(ValueError):
    """A dict that does not fit the event's message; the text names the field."""


# -- message -> dict ------------------------------------------------------------------------------


def to_dict(message: Message) -> dict[str, Any]:
    """Return `message` as a dict with every field, keys sorted; an unset `optional` scalar is left out."""
    return {
        field.name: _field_out(message, field)
        for field in _sorted_fields(message.DESCRIPTOR)
        if not _unset_optional_scalar(message, field)
    }


def _unset_optional_scalar(message: Message, field: FieldDescriptor) -> bool:
    # `optional` in proto3 gives a scalar presence: absent means "not said", which readers default.
    return (
        field.cpp_type != FieldDescriptor.CPPTYPE_MESSAGE
        and not field.is_repeated
        and field.has_presence
        and not message.HasField(field.name)
    )


def _field_out(message: Message, field: FieldDescriptor) -> Any:
    value = getattr(message, field.name)
    if _is_map(field):
        value_field = _message_type(field).fields_by_name["value"]
        return {key: _value_out(value[key], value_field) for key in sorted(value)}
    if field.is_repeated:
        return [_value_out(item, field) for item in value]
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE and not message.HasField(field.name):
        # An unset Struct reads as an empty mapping; any other unset message as None.
        return {} if _message_type(field).full_name == Struct.DESCRIPTOR.full_name else None
    return _value_out(value, field)


def _json_value(value: Struct | ListValue | Value) -> Any:
    """Return a Struct, ListValue or Value as plain Python, object keys sorted (as the JSON payloads had them)."""
    if isinstance(value, Struct):
        return {key: _json_value(value.fields[key]) for key in sorted(value.fields)}
    if isinstance(value, ListValue):
        return [_json_value(item) for item in value.values]
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _json_value(value.struct_value)
    if kind == "list_value":
        return _json_value(value.list_value)
    if kind is None or kind == "null_value":
        return None
    return getattr(value, kind)


def _value_out(value: Any, field: FieldDescriptor) -> Any:
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_MESSAGE:
        name = _message_type(field).full_name
        if name == _TIMESTAMP:
            return from_timestamp(value).isoformat()
        if name in _STRUCT_TYPES:
            return _json_value(value)
        return to_dict(value)
    if kind == FieldDescriptor.CPPTYPE_ENUM:
        return _enum_names(field.enum_type).get(value, value)
    if kind in _FLOATS:
        return float(value)
    return value


# -- dict -> message ------------------------------------------------------------------------------


def from_dict(message: Message, data: Mapping[str, Any]) -> Message:
    """Fill `message` from `data` and return it; raises PayloadError naming the first misfit field."""
    descriptor = message.DESCRIPTOR
    if not isinstance(data, Mapping):
        raise PayloadError(f"{descriptor.full_name} payload must be a mapping, got {type(data).__name__}")
    for key, value in data.items():
        # The stubs type the C (upb) descriptor separately; it is the same API.
        field = cast("FieldDescriptor | None", descriptor.fields_by_name.get(key))
        if field is None:
            known = ", ".join(f.name for f in descriptor.fields)
            raise PayloadError(f"{descriptor.full_name} has no field {key!r} (fields: {known})")
        if value is None:
            continue
        try:
            _field_in(message, field, value)
        except PayloadError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise PayloadError(f"{descriptor.full_name}.{key}: {exc}") from None
    return message


def _field_in(message: Message, field: FieldDescriptor, value: Any) -> None:
    target = getattr(message, field.name)
    if _is_map(field):
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping, got {type(value).__name__}")
        value_field = _message_type(field).fields_by_name["value"]
        for key, item in value.items():
            if value_field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                _message_in(target[_scalar_in(key, _message_type(field).fields_by_name["key"])], value_field, item)
            else:
                target[_scalar_in(key, _message_type(field).fields_by_name["key"])] = _scalar_in(item, value_field)
        return
    if field.is_repeated:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            for item in value:
                _message_in(target.add(), field, item)
        else:
            target.extend(_scalar_in(item, field) for item in value)
        return
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        _message_in(target, field, value)
        return
    setattr(message, field.name, _scalar_in(value, field))


def _message_in(target: Any, field: FieldDescriptor, value: Any) -> None:
    name = _message_type(field).full_name
    if name == _TIMESTAMP:
        target.CopyFrom(to_timestamp(value))
    elif name in _STRUCT_TYPES:
        try:
            json_format.ParseDict(value, target)
        except json_format.ParseError as exc:
            raise ValueError(str(exc)) from None
    elif isinstance(value, Mapping):
        from_dict(target, value)
    else:
        raise TypeError(f"expected a mapping, got {type(value).__name__}")


def _scalar_in(value: Any, field: FieldDescriptor) -> Any:
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_STRING:
        if field.type == FieldDescriptor.TYPE_BYTES:
            if not isinstance(value, bytes):
                raise TypeError(f"expected bytes, got {type(value).__name__}")
            return value
        if isinstance(value, UUID):
            return str(value)
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        return value
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        if not isinstance(value, bool):
            raise TypeError(f"expected a bool, got {type(value).__name__}")
        return value
    if kind in _INTEGERS:
        if isinstance(value, bool):
            raise TypeError("expected an integer, got bool")
        return operator.index(value)
    if kind in _FLOATS:
        if isinstance(value, bool | str | bytes):
            raise TypeError(f"expected a number, got {type(value).__name__}")
        return float(value)
    if kind == FieldDescriptor.CPPTYPE_ENUM:
        numbers = _enum_numbers(field.enum_type)
        if not isinstance(value, str) or value not in numbers:
            raise ValueError(f"expected one of {sorted(numbers)}, got {value!r}")
        return numbers[value]
    raise TypeError(f"unsupported field type {kind}")  # pragma: no cover - every scalar type is handled above


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_timestamp(value: datetime | str) -> Timestamp:
    """Return the Timestamp of a timezone-aware datetime or ISO 8601 string."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise TypeError(f"expected a datetime or an ISO 8601 string, got {type(value).__name__}")
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    # What Timestamp.FromDatetime computes, without its overhead (this is on the decision path).
    delta = moment - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def from_timestamp(stamp: Timestamp) -> datetime:
    """Return a Timestamp as a datetime in UTC (to the microsecond, as Python keeps it)."""
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


# -- descriptors, cached --------------------------------------------------------------------------


@cache
def _sorted_fields(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    return tuple(sorted(descriptor.fields, key=lambda f: f.name))


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.is_repeated
        and field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE
        and _message_type(field).GetOptions().map_entry
    )


def _message_type(field: FieldDescriptor) -> Descriptor:
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


@cache
def _enum_numbers(enum: EnumDescriptor) -> dict[str, int]:
    return {name: number for number, name in _enum_names(enum).items()}


@cache
def _enum_names(enum: EnumDescriptor) -> dict[int, str]:
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
    return {value.number: value.name.removeprefix(prefix).lower() for value in enum.values}

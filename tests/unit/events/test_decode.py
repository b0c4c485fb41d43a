"""Decoding Kafka records into events: plain JSON, CloudEvents (both bindings), bad input."""

from __future__ import annotations

import typing
from collections.abc import Sequence

import orjson
import pytest

from hookd.errors import DecodeError
from hookd.events import decode as decode_module
from hookd.events.decode import Event, Meta, decode_event, make_meta
from hookd.events.trace import TraceContext

SPEC = ("ce_specversion", b"1.0")  # the header that makes a record a binary-mode CloudEvent


def meta(headers: Sequence[tuple[str, bytes]] | None = None) -> Meta:
    return make_meta("cc.events", 2, 1234, b"call-1", 1_700_000_000_000, headers)


def decode(value: object, headers: Sequence[tuple[str, bytes]] | None = None,
           name_field: str = "event") -> Event:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return decode_event(raw, meta(headers), name_field)


def test_plain_json() -> None:
    ev = decode({"event": "Answered", "id": "evt-1", "queue_id": 7})
    assert (ev.name, ev.id) == ("Answered", "evt-1")
    assert ev.payload == {"event": "Answered", "id": "evt-1", "queue_id": 7}
    assert ev.meta == Meta("cc.events", 2, 1234, "call-1", 1_700_000_000_000, {})


@pytest.mark.parametrize(("doc", "name_field", "name"), [
    pytest.param({"type": "Call:Answer"}, "type", "Call:Answer", id="top-level"),
    pytest.param({"meta": {"event": {"name": "Ivr:Start"}}}, "meta.event.name", "Ivr:Start",
                 id="dotted"),
    pytest.param({"meta.kind": "Flat", "meta": {"kind": "Nested"}}, "meta.kind", "Flat",
                 id="literal-dotted-key-wins"),
])
def test_custom_name_field(doc: dict[str, object], name_field: str, name: str) -> None:
    ev = decode(doc, name_field=name_field)
    assert ev.name == name
    assert ev.payload == doc


def test_name_keeps_its_case_and_custom_names() -> None:
    assert decode({"event": "CUSTOM->engine::dialer_member_end"}).name == (
        "CUSTOM->engine::dialer_member_end")


def test_cloudevents_structured() -> None:
    ev = decode({"specversion": "1.0", "type": "Call:Reporting", "id": "ce-1",
                 "source": "/pbx", "data": {"uuid": "c-1", "duration": 185}})
    assert (ev.name, ev.id) == ("Call:Reporting", "ce-1")
    assert ev.payload == {"uuid": "c-1", "duration": 185}


def test_cloudevents_structured_without_data_or_id() -> None:
    ev = decode({"specversion": "1.0", "type": "Ping"})
    assert (ev.name, ev.id, ev.payload) == ("Ping", "cc.events-2-1234", {})


def test_cloudevents_binary() -> None:
    ev = decode({"uuid": "c-1", "id": "payload-id"},
                [("ce_specversion", b"1.0"), ("ce_type", b"Call:Hangup"), ("ce_id", b"ce-9")])
    assert (ev.name, ev.id) == ("Call:Hangup", "ce-9")
    assert ev.payload == {"uuid": "c-1", "id": "payload-id"}
    assert ev.meta.headers["ce_type"] == "Call:Hangup"


def test_cloudevents_binary_id_falls_back() -> None:
    assert decode({"id": "payload-id"}, [SPEC, ("ce_type", b"T")]).id == "payload-id"
    assert decode({"x": 1}, [SPEC, ("ce_type", b"T")]).id == "cc.events-2-1234"


@pytest.mark.parametrize("headers", [
    pytest.param([("ce_type", b"Call:Hangup"), ("ce_id", b"ce-9")], id="ce_type-and-ce_id"),
    pytest.param([("ce_type", b"Call:Hangup")], id="ce_type"),
    pytest.param([("ce_source", b"/pbx"), ("ce_id", b"ce-9")], id="other-ce-headers"),
    pytest.param([("ce_specversion_x", b"1.0"), ("ce_type", b"Call:Hangup")],
                 id="lookalike-header"),
])
def test_ce_headers_without_specversion_leave_a_plain_event(
        headers: Sequence[tuple[str, bytes]]) -> None:
    ev = decode({"event": "Answered", "id": "evt-1", "queue_id": 7}, headers)
    assert (ev.name, ev.id) == ("Answered", "evt-1")  # not ce_type, not ce_id
    assert ev.payload == {"event": "Answered", "id": "evt-1", "queue_id": 7}
    assert ev.meta.headers == {k: v.decode() for k, v in headers}  # still seen by templates


def test_ce_type_without_specversion_and_no_name_is_a_plain_bad_record() -> None:
    with pytest.raises(DecodeError, match="no event name"):
        decode({"queue_id": 7}, [("ce_type", b"Joined")])


def test_cloudevents_binary_name_is_ce_type_whatever_the_name_field() -> None:
    ev = decode({"kind": "Plain"}, [SPEC, ("ce_type", b"Call:Answer")], name_field="kind")
    assert ev.name == "Call:Answer"


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON",
    "text/json", "application/vnd.pbx.call+json",
])
def test_cloudevents_binary_json_content_types(content_type: str) -> None:
    ev = decode({"uuid": "c-1"}, [SPEC, ("ce_type", b"T"), ("ce_id", b"i"),
                                  ("content-type", content_type.encode())])
    assert (ev.name, ev.id, ev.payload) == ("T", "i", {"uuid": "c-1"})


@pytest.mark.parametrize(("header", "content_type", "value"), [
    pytest.param("content-type", "text/plain", b"hello", id="text"),
    pytest.param("content-type", "text/plain", b'{"uuid": "c-1"}', id="text-that-parses"),
    pytest.param("content-type", "application/xml", b"<call/>", id="xml"),
    pytest.param("Content-Type", "application/octet-stream", b"\x00\x01", id="binary-any-case"),
    pytest.param("content-type", "application/jsonx", b"{}", id="json-lookalike"),
])
def test_cloudevents_binary_non_json_data_is_a_decode_error(
        header: str, content_type: str, value: bytes) -> None:
    headers = [SPEC, ("ce_type", b"T"), (header, content_type.encode())]
    with pytest.raises(DecodeError) as caught:
        decode_event(value, meta(headers))
    assert str(caught.value) == (f"CloudEvent data is {content_type!r}, not JSON: only JSON "
                                 "object data can be a payload")


def test_content_type_of_a_plain_event_is_not_looked_at() -> None:
    ev = decode({"event": "Answered"}, [("content-type", b"text/plain")])
    assert ev.name == "Answered"


@pytest.mark.parametrize(("doc", "event_id"), [
    pytest.param({"event": "E", "id": "evt-9"}, "evt-9", id="string"),
    pytest.param({"event": "E", "id": 77}, "77", id="integer"),
    pytest.param({"event": "E"}, "cc.events-2-1234", id="absent"),
    pytest.param({"event": "E", "id": ""}, "cc.events-2-1234", id="empty"),
    pytest.param({"event": "E", "id": None}, "cc.events-2-1234", id="null"),
    pytest.param({"event": "E", "id": True}, "cc.events-2-1234", id="bool"),
    pytest.param({"event": "E", "id": {"a": 1}}, "cc.events-2-1234", id="object"),
])
def test_event_id(doc: dict[str, object], event_id: str) -> None:
    assert decode(doc).id == event_id


@pytest.mark.parametrize(("value", "headers", "message"), [
    pytest.param(None, None, "record has no value (tombstone)", id="tombstone"),
    pytest.param(b'{"event": "\xff\xfe"}', None, "value is not UTF-8 JSON: ", id="not-utf8"),
    pytest.param(b"\xef\xbb\xbf{}", None, "value is not UTF-8 JSON: ", id="bom"),
    pytest.param(b"not json", None, "value is not UTF-8 JSON: ", id="not-json"),
    pytest.param(b"", None, "value is not UTF-8 JSON: ", id="empty"),
    pytest.param(b'{"event": "A"', None, "value is not UTF-8 JSON: ", id="truncated"),
    pytest.param(b'[{"event": "A"}]', None, "value is JSON list, not an object", id="array"),
    pytest.param(b"42", None, "value is JSON int, not an object", id="number"),
    pytest.param(b'"Answered"', None, "value is JSON str, not an object", id="string"),
    pytest.param(b"null", None, "value is JSON NoneType, not an object", id="null"),
    pytest.param(b'{"queue_id": 7}', None,
                 "no event name (expected a non-empty string at 'event')", id="no-name"),
    pytest.param(b'{"event": ""}', None,
                 "no event name (expected a non-empty string at 'event')", id="empty-name"),
    pytest.param(b'{"event": "   "}', None,
                 "no event name (expected a non-empty string at 'event')", id="blank-name"),
    pytest.param(b'{"event": 5}', None,
                 "no event name (expected a non-empty string at 'event')", id="name-not-string"),
    pytest.param(b'{"specversion": "1.0", "id": "x", "data": {}}', None,
                 "CloudEvent has no type", id="structured-without-type"),
    pytest.param(b'{"specversion": "1.0", "type": "", "data": {}}', None,
                 "CloudEvent has no type", id="structured-empty-type"),
    pytest.param(b'{"specversion": "1.0", "type": "T", "data": [1, 2]}', None,
                 "CloudEvents data is not a JSON object", id="structured-data-array"),
    pytest.param(b'{"specversion": "1.0", "type": "T", "data": "text"}', None,
                 "CloudEvents data is not a JSON object", id="structured-data-string"),
    pytest.param(b'{"specversion": "1.0", "type": "T", "data_base64": "AAE="}', None,
                 "CloudEvent data is binary (data_base64), not JSON", id="structured-base64"),
    pytest.param(b'{"a": 1}', [SPEC, ("ce_type", b"")], "CloudEvent has no type",
                 id="binary-empty-type"),
    pytest.param(b'{"a": 1}', [SPEC], "CloudEvent has no type", id="binary-without-type"),
    pytest.param(b"[1]", [SPEC, ("ce_type", b"T")], "value is JSON list, not an object",
                 id="binary-array"),
    pytest.param(b"not json", [SPEC, ("ce_type", b"T")], "value is not UTF-8 JSON: ",
                 id="binary-not-json"),
])
def test_decode_errors(value: bytes | None, headers: Sequence[tuple[str, bytes]] | None,
                       message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_event(value, meta(headers))
    assert str(caught.value).startswith(message), str(caught.value)


def test_make_meta_decodes_key_and_headers() -> None:
    m = make_meta("t", 0, 5, b"k\xff", None, [("a", b"1"), ("b", None), ("c", b"\xfe")])
    assert m.key == "k\ufffd"
    assert m.headers == {"a": "1", "b": "", "c": "\ufffd"}
    assert make_meta("t", 0, 5, "already-text", 9, None).key == "already-text"
    assert make_meta("t", 0, 5, None, None, None).as_dict() == {
        "topic": "t", "partition": 0, "offset": 5, "key": None, "timestamp": None,
        "headers": {}}
    assert make_meta("t", 0, 5, bytearray(b"k\xff"), None, ()).key == "k\ufffd"
    assert make_meta("t", 0, 5, None, None, [("a", "text")]).headers == {"a": "text"}


@pytest.mark.parametrize(("doc", "name_field"), [
    pytest.param({"meta": {"event": {}}}, "meta.event.name", id="dotted-absent"),
    pytest.param({"meta": {"event": {"name": 5}}}, "meta.event.name", id="dotted-not-string"),
    pytest.param({"meta": {"kind": "Nested"}}, "kind", id="undotted-is-top-level-only"),
    pytest.param({"event": {"name": "E"}}, "event", id="undotted-object"),
])
def test_name_field_not_found(doc: dict[str, object], name_field: str) -> None:
    with pytest.raises(DecodeError, match=f"no event name .*at {name_field!r}"):
        decode(doc, name_field=name_field)


def test_records_objects_compare_and_hash_as_frozen_dataclasses_did() -> None:
    a, b = decode({"event": "E", "id": "i"}), decode({"event": "E", "id": "i"})
    object.__setattr__(b, "context", {"event": "E"})  # as render sets it: not compared
    assert a == b and a.meta == b.meta
    assert a != decode({"event": "E", "id": "j"})
    assert repr(a.meta) == ("Meta(topic='cc.events', partition=2, offset=1234, key='call-1', "
                            "timestamp=1700000000000, headers={})")
    with pytest.raises(TypeError, match="unhashable type: 'dict'"):
        hash(a)  # (as before: the payload and the headers are dicts)


def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls, vars(decode_module), include_extras=True)


@pytest.mark.parametrize("cls", [Meta, Event, TraceContext])
def test_record_fields_are_final(cls: type) -> None:
    """These dataclasses are not frozen, so that their __init__ sets each slot directly
    (a frozen one's calls object.__setattr__ per field, the most of a record's decode
    after orjson): mypy's Final keeps them unchanged instead. Event.context alone is set
    after, once (the templates' variables, hookd.requests.render)."""
    assert not cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert hasattr(cls, "__slots__")
    changeable = {name for name, hint in _hints(cls).items()
                  if typing.get_origin(hint) is not typing.Final and hint is not typing.Final}
    assert changeable == ({"context"} if cls is Event else set())

"""Event data cannot rewrite a hook's URL (issue 22): on the real broker, with a real
receiver, the raw request line holds exactly the path segments and query keys the template
wrote; `|url_raw` is the opt-out; a URL that no longer parses is a render dead letter."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from hookd.cli.commands import cmd_render
from tests.integration.harness import (
    hook,
    new_topic,
    produce,
    read_topic,
    running,
    unique,
    wait_ready,
    write_config,
)
from tests.integration.receiver import Receiver

ISSUE_EVENT = {"event": "Answered", "id": "../../admin", "name": "x&admin=true#frag"}

# case: (id, name) -> the raw path and query the receiver must get
CASES: dict[str, tuple[Any, Any, str]] = {
    "issue": ("../../admin", "x&admin=true#frag",
              "/items/..%2F..%2Fadmin?name=x%26admin%3Dtrue%23frag"),
    "encoded-dots": ("%2e%2e/", "a=b", "/items/%252e%252e%2F?name=a%3Db"),
    "encoded-slash": ("..%2f", "?x&y", "/items/..%252f?name=?x%26y"),
    "dot-dot": ("..", "#", "/items/%2E%2E?name=%23"),
    "syntax": ("a?b#c&d=e", "k=v&w", "/items/a%3Fb%23c%26d%3De?name=k%3Dv%26w"),
    "unicode": ("Zoë Ortiz", "Zoë +1 555", "/items/Zo%C3%AB%20Ortiz?name=Zo%C3%AB%20%2B1%20555"),
    "int-null": (42, None, "/items/42?name=None"),
}


async def test_event_data_cannot_rewrite_the_url(broker: Any, receiver: Receiver,
                                                  tmp_path: Path) -> None:
    topic, dlq = await new_topic(broker.bootstrap, 2, "url"), unique("dlq")
    hooks = [
        hook("items", "Answered", receiver.url("/items/{{ id }}?name={{ name }}"),
             request={"headers": {"X-Case": "{{ payload.case|default('-') }}"}}),
        hook("raw", "Raw", receiver.url("/{{ prefix|url_raw }}/leaf/{{ id }}?q={{ id }}")),
        hook("host", "Host", f"http://{{{{ host }}}}:{receiver.port}/x"),
    ]
    cfg = write_config(tmp_path, broker.bootstrap, topic, hooks, dlq=dlq)
    events = [{"event": "Answered", "case": case, "id": id_, "name": name}
              for case, (id_, name, _) in CASES.items()]
    events += [{"event": "Raw", "id": "a/../b", "prefix": "v2/deep"},
               {"event": "Host", "id": "h1", "host": "127.0.0.1/admin?"}]
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        await produce(broker.bootstrap, topic, [(b"k", e) for e in events])
        await receiver.wait_for(len(CASES) + 1)
        [letter] = [orjson.loads(r.value) for r in await read_topic(broker.bootstrap, dlq, 1)]

    got = {r.headers.get("x-case", r.path): r for r in receiver.requests}
    assert {case: got[case].raw_path for case in CASES} == {
        case: expected for case, (_, _, expected) in CASES.items()}
    for case, (id_, name, _) in CASES.items():
        sent = urlsplit(got[case].raw_path)
        segments = sent.path.split("/")
        assert segments[:2] == ["", "items"] and len(segments) == 3, case
        assert unquote(segments[2]) == str(id_), case
        assert parse_qsl(sent.query, keep_blank_values=True) == [("name", str(name))], case
        assert got[case].method == "POST" and sent.fragment == ""

    [raw] = [r for r in receiver.requests if r.path.startswith("/v2/")]
    assert raw.raw_path == "/v2/deep/leaf/a%2F..%2Fb?q=a/../b"  # the opt-out, and only it

    assert (letter["hook"], letter["error"]["kind"]) == ("host", "render")
    assert letter["error"]["message"].startswith("url 'http://127.0.0.1%2Fadmin%3F:")
    assert all(not r.path.startswith("/x") for r in receiver.requests)  # never sent

    # `hookd render` prints the URL the receiver got, for the issue's own event
    event = tmp_path / "event.json"
    event.write_text(json.dumps(ISSUE_EVENT))
    out, err = io.StringIO(), io.StringIO()
    assert cmd_render(str(cfg), str(event), "items", False, out, err) == 0, err.getvalue()
    assert out.getvalue().splitlines()[1] == "POST " + receiver.url(CASES["issue"][2])
    print(out.getvalue().splitlines()[1], "|", got["issue"].method, got["issue"].raw_path)


"""Loading the configuration: every class of invalid config is reported as `FILE:LINE: path:
message`, all at once; valid trees load into a Runtime (hooks_dir, secrets, defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hookd.config import Config, parse_rate, signing_key
from hookd.errors import ConfigError
from hookd.pipeline.runtime import DEFAULT_PATH, default_config_path, load_config
from tests.unit.conftest import SAMPLE_CONFIG, WriteConfig

MAIN = "hookd.yaml"


@dataclass(frozen=True)
class Exp:
    """One expected issue. `message` is the whole message when `exact`, else a substring.
    `{root}` in a message stands for the config directory."""

    line: int | None
    path: str
    message: str
    file: str = MAIN
    exact: bool = True


def sub(line: int | None, path: str, message: str, file: str = MAIN) -> Exp:
    return Exp(line, path, message, file, exact=False)


def case(main: str, expected: list[Exp], case_id: str, *, hooks_d: Mapping[str, str] | None = None,
         env: Mapping[str, str] | None = None, extra: Mapping[str, str | bytes] | None = None
         ) -> Any:
    return pytest.param(main, hooks_d, env or {}, extra or {}, expected, id=case_id)


HOOK_OK = """\
  - id: ok
    event: X
    request: {url: "http://x.example/"}
"""

INVALID = [
    # ---------------------------------------------------------------- unknown keys
    case("""
        kafka:
          group_id: g
        bogus: 1
        """, [Exp(3, "bogus", "unknown key")], "unknown-key-top-level"),
    case("""
        delivery:
          retry:
            schedule: [1s]
            backof: 2
        """, [Exp(4, "delivery.retry.backof", "unknown key")], "unknown-key-nested"),
    case("""
        hooks:
          - id: a
            event: X
            colour: red
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].colour", "unknown key")], "unknown-key-in-hook"),
    case("""
        hooks:
          - id: a
            event: X
            request:
              url: http://x.example/
              bdy: "{}"
        """, [Exp(6, "hooks[0].request.bdy", "unknown key")], "unknown-key-in-request"),
    case("""
        hooks:
          - id: a
            event: X
            auth: {type: api_key, value: k, extra: 1}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].auth.extra", "unknown key")], "unknown-key-in-auth"),
    # ---------------------------------------------------------------- wrong types
    case("""
        delivery:
          max_in_flight: many
        """, [sub(2, "delivery.max_in_flight", "valid integer, got 'many'")], "wrong-type-int"),
    case("""
        hooks:
          - id: a
            enabled: "yes"
            event: X
            request: {url: "http://x.example/"}
        """, [sub(3, "hooks[0].enabled", "valid boolean, got 'yes'")], "wrong-type-bool"),
    case("""
        kafka: [localhost:9092]
        """, [sub(1, "kafka", "valid dictionary")], "wrong-type-section-not-mapping"),
    case("""
        hooks:
          id: a
        """, [Exp(1, "hooks", "expected a list of hooks")], "wrong-type-hooks-not-list"),
    case("""
        hooks:
          - just-a-string
        """, [Exp(2, "hooks[0]", "expected a mapping")], "wrong-type-hook-not-mapping"),
    case("""
        - kafka
        """, [Exp(1, "", "expected a mapping")], "wrong-type-document-not-mapping"),
    case("""
        hooks_dir: 5
        """, [sub(1, "hooks_dir", "valid string, got 5")], "wrong-type-hooks-dir"),
    # ---------------------------------------------------------------- durations
    case("""
        shutdown_timeout: 5 sec
        """, [Exp(1, "shutdown_timeout",
                  "invalid duration '5 sec' (use a number and a unit: ms, s, m, h, d)")],
         "bad-duration-top-level"),
    case("""
        shutdown_timeout: -5
        """, [Exp(1, "shutdown_timeout", "a duration needs a unit, e.g. '-5s' or '-5ms'")],
         "bad-duration-negative"),
    case("""
        shutdown_timeout: 30
        """, [Exp(1, "shutdown_timeout", "a duration needs a unit, e.g. '30s' or '30ms'")],
         "bad-duration-no-unit"),
    case("""
        delivery:
          timeout: true
        """, [Exp(2, "delivery.timeout",
                  "expected a duration such as '250ms', '5s', '2h', got True")],
         "bad-duration-bool"),
    case("""
        hooks:
          - id: a
            event: X
            request: {url: "http://x.example/", timeout: 10 seconds}
            retry:
              schedule: [1s, soon]
        """, [sub(4, "hooks[0].request.timeout", "invalid duration '10 seconds'"),
              sub(6, "hooks[0].retry.schedule[1]", "invalid duration 'soon'")],
         "bad-duration-in-hook"),
    # ---------------------------------------------------------------- missing required keys
    case("""
        hooks:
          - id: a
            event: X
        """, [Exp(2, "hooks[0].request", "required key is missing")], "missing-request"),
    case("""
        hooks:
          - id: a
            event: X
            request:
              method: POST
        """, [Exp(4, "hooks[0].request.url", "required key is missing")], "missing-url"),
    case("""
        hooks:
          - request: {url: "http://x.example/"}
        """, [Exp(2, "hooks[0].id", "required key is missing"),
              Exp(2, "hooks[0].event", "required key is missing")], "missing-id-and-event"),
    case("""
        hooks:
          - id: a
            event: X
            auth: {type: bearer}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].auth.token", "required key is missing")], "missing-auth-token"),
    # ---------------------------------------------------------------- enums and patterns
    case("""
        hooks:
          - id: a
            event: X
            request:
              method: FETCH
              url: http://x.example/
        """, [sub(5, "hooks[0].request.method",
                  "'GET', 'POST', 'PUT', 'PATCH' or 'DELETE', got 'FETCH'")], "bad-method"),
    case("""
        logging: {level: loud}
        """, [sub(1, "logging.level", "got 'loud'")], "bad-log-level"),
    case("""
        hooks:
          - id: a
            event: X
            auth: {type: magic, token: t}
            request: {url: "http://x.example/"}
        """, [sub(4, "hooks[0].auth", "'magic'")], "bad-auth-type"),
    case("""
        hooks:
          - id: "crm answered"
            event: X
            request: {url: "http://x.example/"}
        """, [sub(2, "hooks[0].id", "should match pattern")], "bad-hook-id"),
    case("""
        hooks:
          - id: a
            event: []
            request: {url: "http://x.example/"}
        """, [sub(3, "hooks[0].event", "at least 1 item")], "empty-event-list"),
    # ---------------------------------------------------------------- duplicate ids
    case("""
        hooks:
          - id: a
            event: X
            request: {url: "http://x.example/"}
          - id: b
            event: X
            request: {url: "http://x.example/"}
          - id: a
            event: Y
            request: {url: "http://x.example/"}
        """, [Exp(8, "hooks[2].id", "duplicate hook id 'a' (first at {root}/hookd.yaml:2)")],
         "duplicate-hook-id"),
    case("""
        hooks:
          - id: a
            event: X
            request: {url: "http://x.example/"}
        """, [Exp(3, "hooks[0].id", "duplicate hook id 'a' (first at {root}/hookd.yaml:2)",
                  file="hooks.d/10-more.yaml"),
              Exp(6, "hooks[1].id", "duplicate hook id 'a' (first at {root}/hookd.yaml:2)",
                  file="hooks.d/10-more.yaml")], "duplicate-hook-id-across-files",
         hooks_d={"10-more.yaml": """
            hooks:
              - event: X
                id: a
                request: {url: "http://x.example/"}
              - event: X
                id: a
                request: {url: "http://x.example/"}
            """}),
    case("""
        hooks:
          - id: a
            event: X
            colour: red
            request: {url: "http://x.example/"}
          - id: a
            event: X
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].colour", "unknown key"),
              Exp(6, "hooks[1].id", "duplicate hook id 'a' (first at {root}/hookd.yaml:2)")],
         "duplicate-hook-id-first-invalid"),
    # ---------------------------------------------------------------- filters
    case("""
        hooks:
          - id: a
            event: X
            filter:
              queue_id: 7
              name:
                regex: "(unclosed"
            request: {url: "http://x.example/"}
        """, [sub(7, "hooks[0].filter.name.regex", "invalid regex '(unclosed'")], "bad-regex"),
    case("""
        hooks:
          - id: a
            event: X
            filter:
              channel: {like: call}
            request: {url: "http://x.example/"}
        """, [Exp(5, "hooks[0].filter.channel.like", "unknown operator 'like' (expected one of "
                  "eq, ne, in, nin, gt, gte, lt, lte, regex, exists)")], "unknown-filter-operator"),
    case("""
        hooks:
          - id: a
            event: X
            bogus: 1
            filter:
              name: {regex: "[z-a]"}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].bogus", "unknown key"),
              sub(6, "hooks[0].filter.name.regex", "invalid regex '[z-a]'")],
         "bad-regex-in-otherwise-invalid-hook"),
    # ---------------------------------------------------------------- templates
    case("""
        hooks:
          - id: a
            event: X
            request:
              url: "http://x.example/{{ member_call_id"
        """, [sub(5, "hooks[0].request.url", "template syntax: unexpected end of template")],
         "template-syntax-url"),
    case("""
        hooks:
          - id: a
            event: X
            request:
              url: http://x.example/
              headers:
                X-Source: hookd
                X-Agent: "{{ agent_name }"
        """, [sub(8, "hooks[0].request.headers.X-Agent", "template syntax:")],
         "template-syntax-header"),
    case("""
        hooks:
          - id: a
            event: X
            request:
              url: http://x.example/
              body: |
                {"a": 1,
                 "b": {% if %}}
        """, [sub(6, "hooks[0].request.body", "template syntax: Expected an expression, got "
                  "'end of statement block' (template line 2)")], "template-syntax-body"),
    case("""
        hooks:
          - id: a
            event: X
            request:
              url: http://x.example/
              query: {q: "{{ 1 + }}"}
        """, [sub(6, "hooks[0].request.query.q", "template syntax:")], "template-syntax-query"),
    case("""
        hooks:
          - id: a
            event: X
            request:
              method: FETCH
              url: "http://x.example/{{ a"
        """, [sub(5, "hooks[0].request.method", "got 'FETCH'"),
              sub(6, "hooks[0].request.url", "template syntax:")],
         "template-syntax-in-otherwise-invalid-hook"),
    # ---------------------------------------------------------------- reserved headers
    case("""
        hooks:
          - id: a
            event: X
            request:
              url: http://x.example/
              headers:
                Content-Type: text/plain
                webhook-id: mine
        """, [Exp(7, "hooks[0].request.headers.Content-Type",
                  "header Content-Type is set by hookd (use content_type for content-type)"),
              Exp(8, "hooks[0].request.headers.webhook-id",
                  "header webhook-id is set by hookd (use content_type for content-type)")],
         "reserved-headers"),
    case("""
        hooks:
          - id: a
            event: X
            auth: {type: api_key, header: Webhook-Signature, value: k}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].auth.header", "header Webhook-Signature is set by hookd")],
         "reserved-header-as-api-key-header"),
    case("""
        hooks:
          - id: a
            event: X
            colour: red
            request:
              url: http://x.example/
              headers: {User-Agent: curl}
        """, [Exp(4, "hooks[0].colour", "unknown key"),
              Exp(7, "hooks[0].request.headers.User-Agent",
                  "header User-Agent is set by hookd (use content_type for content-type)")],
         "reserved-header-in-otherwise-invalid-hook"),
    # ---------------------------------------------------------------- secrets
    case("""
        hooks:
          - id: a
            event: X
            auth: {type: bearer, token: "${env:CRM_TOKEN}"}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].auth.token", "environment variable CRM_TOKEN is not set")],
         "missing-env", env={"OTHER": "x"}),
    case("""
        hooks:
          - id: a
            event: X
            request:
              url: http://x.example/
              headers: {X-Key: "${file:secrets/nope}"}
        """, [Exp(6, "hooks[0].request.headers.X-Key",
                  "cannot read secret file:secrets/nope: FileNotFoundError")], "missing-file"),
    case("""
        kafka:
          security: {protocol: SASL_SSL, sasl_mechanism: PLAIN, username: u,
                     password: "${file:secrets}"}
        """, [Exp(3, "kafka.security.password",
                  "cannot read secret file:secrets: IsADirectoryError")],
         "file-is-a-directory", extra={"secrets/k": "v"}),
    case("""
        hooks:
          - id: a
            event: X
            auth: {type: bearer, token: "${file:secrets/binary}"}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].auth.token",
                  "cannot read secret file:secrets/binary: UnicodeDecodeError")],
         "file-not-utf8", extra={"secrets/binary": b"\xff\xfe\x00tok"}),
    case("""
        hooks:
          - id: a
            event: X
            auth: {type: bearer, token: "${cred:crm_token}"}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].auth.token",
                  "${cred:crm_token} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)")],
         "cred-without-credentials-directory"),
    case("""
        hooks:
          - id: a
            event: X
            auth: {type: bearer, token: "${cred:crm_token}"}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].auth.token",
                  "cannot read secret cred:crm_token: FileNotFoundError")],
         "cred-not-in-credentials-directory", env={"CREDENTIALS_DIRECTORY": "{root}/creds"},
         extra={"creds/other": "x"}),
    case("""
        hooks:
          - id: a
            event: X
            auth: {type: bearer, token: "${env:}"}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].auth.token", "empty name in ${env:}")], "secret-empty-name"),
    # ---------------------------------------------------------------- signing
    case("""
        hooks:
          - id: a
            event: X
            signing: {secret: "not base64!"}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].signing.secret",
                  "signing secret must be base64, optionally prefixed whsec_")],
         "signing-secret-not-base64"),
    case("""
        hooks:
          - id: a
            event: X
            signing: {secret: "whsec_c2hvcnQ="}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].signing.secret",
                  "signing secret is too short (need at least 16 bytes of key)")],
         "signing-secret-too-short"),
    case("""
        hooks:
          - id: a
            event: X
            signing:
              secret:
                - whsec_g4dtUC07hnLrHs7aZYFDyBOph50j11SE
                - whsec_%%%
            request: {url: "http://x.example/"}
        """, [Exp(5, "hooks[0].signing.secret",
                  "signing secret must be base64, optionally prefixed whsec_")],
         "signing-secret-bad-in-rotation"),
    # ---------------------------------------------------------------- request shape
    case("""
        hooks:
          - id: a
            event: X
            request:
              url: http://x.example/
              body: "{}"
              raw_body: "{}"
        """, [Exp(4, "hooks[0].request", "give either body or raw_body, not both")],
         "body-and-raw-body"),
    case("""
        hooks:
          - id: a
            event: X
            request:
              method: get
              url: http://x.example/
              body: "{}"
        """, [Exp(4, "hooks[0].request", "a GET request has no body; use query or fields")],
         "get-with-body"),
    case("""
        hooks:
          - id: a
            event: X
            request:
              url: http://x.example/
              body: "{}"
              fields: [a]
        """, [Exp(4, "hooks[0].request",
                  "fields/map shape the default body; they cannot go with body")],
         "fields-with-body"),
    case("""
        hooks:
          - id: a
            event: X
            request:
              url: http://x.example/
              headers: {"X Bad": v}
        """, [Exp(6, "hooks[0].request.headers", "invalid header name 'X Bad'")],
         "bad-header-name"),
    # ---------------------------------------------------------------- other settings
    case("""
        delivery:
          allow_networks: [10.0.0.0/8, 10.0.0.0/33]
        """, [sub(2, "delivery.allow_networks", "invalid CIDR '10.0.0.0/33'")], "bad-cidr"),
    case("""
        delivery:
          allow_networks: [not-a-network]
        """, [sub(2, "delivery.allow_networks", "invalid CIDR 'not-a-network'")],
         "bad-cidr-text"),
    case("""
        hooks:
          - id: a
            event: X
            rate_limit: lots
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].rate_limit", "invalid rate 'lots' (expected e.g. 50/s, 600/m)")],
         "bad-rate-limit"),
    case("""
        hooks:
          - id: a
            event: X
            rate_limit: 0/s
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].rate_limit", "invalid rate '0/s' (expected e.g. 50/s, 600/m)")],
         "zero-rate-limit"),
    case("""
        kafka:
          security: {protocol: SASL_SSL}
        """, [Exp(2, "kafka.security", "protocol SASL_SSL needs sasl_mechanism")],
         "sasl-without-mechanism"),
    case("""
        kafka:
          topics: [cc.events]
          outcomes_topic: cc.events
        """, [Exp(3, "kafka.outcomes_topic", "'cc.events' must be a topic of its own, not a "
                                             "source topic, the dead-letter topic, its replay "
                                             "ledger or a retry topic")],
         "outcomes-topic-is-a-source-topic"),
    case("""
        kafka:
          outcomes_topic: hookd.retry.log
        """, [Exp(2, "kafka.outcomes_topic", "'hookd.retry.log' must be a topic of its own, "
                                             "not a source topic, the dead-letter topic, its "
                                             "replay ledger or a retry topic")],
         "outcomes-topic-under-the-retry-prefix"),
    case("""
        kafka:
          outcomes_topic: hookd.dlq.replayed
        """, [Exp(2, "kafka.outcomes_topic", "'hookd.dlq.replayed' must be a topic of its "
                                             "own, not a source topic, the dead-letter topic, "
                                             "its replay ledger or a retry topic")],
         "outcomes-topic-is-the-replay-ledger"),
    case("""
        kafka:
          security:
            protocol: SASL_SSL
            sasl_mechanism: OAUTHBEARER
        """, [Exp(4, "kafka.security.sasl_mechanism",
                  "OAUTHBEARER is not supported: hookd has no OAuth token provider for Kafka "
                  "(aiokafka's sasl_oauth_token_provider); use PLAIN, SCRAM-SHA-256 or "
                  "SCRAM-SHA-512")], "sasl-oauthbearer"),
    case("""
        health: {listen: 8081}
        """, [Exp(1, "health.listen", "expected HOST:PORT as a string, got int")],
         "health-listen-not-a-string"),
    case("""
        health: {listen: "8081"}
        """, [Exp(1, "health.listen", "expected HOST:PORT, got '8081'")], "bad-health-listen"),
    case("""
        hooks:
          - id: a
            event: X
            tls: {key_file: k.pem}
            request: {url: "http://x.example/"}
        """, [Exp(4, "hooks[0].tls", "key_file needs cert_file")], "tls-key-without-cert"),
    # ---------------------------------------------------------------- YAML itself
    case("""
        kafka:
          topics: [a, b
        delivery:
          timeout: 5s
        """, [sub(3, "", "YAML syntax: while parsing a flow sequence")], "yaml-syntax-error"),
    case("""
        kafka:
          group_id: g
           bad: indent
        """, [sub(3, "", "YAML syntax: mapping values are not allowed here")],
         "yaml-syntax-error-indent"),
    case("""
        kafka:
          group_id: a
          group_id: b
        """, [Exp(3, "kafka.group_id", "duplicate key")], "yaml-duplicate-key"),
    case("""
        hooks:
          - id: a
            event: X
            request: {url: "http://x.example/", url: "http://y.example/"}
        """, [Exp(4, "hooks[0].request.url", "duplicate key")], "yaml-duplicate-key-in-hook"),
    # ---------------------------------------------------------------- hooks_dir files
    case("""
        hooks: []
        """, [Exp(3, "hooks[0].colour", "unknown key", file="hooks.d/10-crm.yaml")],
         "hooks-dir-error-names-its-file", hooks_d={"10-crm.yaml": """
            hooks:
              - id: a
                colour: red
                event: X
                request: {url: "http://x.example/"}
            """}),
    case("""
        hooks: []
        """, [sub(4, "", "YAML syntax: while parsing a flow sequence",
                  file="hooks.d/20-broken.yaml")],
         "hooks-dir-yaml-syntax", hooks_d={"20-broken.yaml": """
            hooks:
              - id: a
                event: [X
            """}),
    case("""
        hooks: []
        """, [Exp(1, "hookz", "unknown key", file="hooks.d/10-typo.yaml")],
         "hooks-dir-unknown-top-key", hooks_d={"10-typo.yaml": """
            hookz: []
            """}),
    case("""
        hooks: []
        """, [Exp(2, "hooks[0].auth.token", "environment variable SVC_TOKEN is not set",
                  file="hooks.d/10-svc.yaml")],
         "hooks-dir-missing-env", hooks_d={"10-svc.yaml": """
            hooks:
              - {id: a, event: X, auth: {type: bearer, token: "${env:SVC_TOKEN}"},
                 request: {url: "http://x.example/"}}
            """}),
]


@pytest.mark.parametrize(("main", "hooks_d", "env", "extra", "expected"), INVALID)
def test_invalid_config_is_reported_at_file_line_path(
        write_config: WriteConfig, main: str, hooks_d: Mapping[str, str] | None,
        env: Mapping[str, str], extra: Mapping[str, str | bytes], expected: list[Exp]) -> None:
    tree = write_config(main, hooks_d, extra=extra)
    root = str(tree.root)
    issues = tree.issues({k: v.format(root=root) for k, v in env.items()})

    got = [(i.file, i.line, i.path) for i in issues]
    assert got == [(tree.path(e.file), e.line, e.path) for e in expected], [str(i) for i in issues]
    for issue, exp in zip(issues, expected, strict=True):
        message = exp.message.replace("{root}", root)
        if exp.exact:
            where = f"{tree.path(exp.file)}:{exp.line}"
            assert str(issue) == (f"{where}: {exp.path}: {message}" if exp.path
                                  else f"{where}: {message}")
        else:
            assert message in issue.message, str(issue)


def test_all_errors_are_reported_in_one_run(write_config: WriteConfig) -> None:
    tree = write_config("""
        kafka:
          group_id: ""
        delivery:
          timeout: forever
        hooks:
          - id: a
            event: X
            request:
              method: FETCH
              url: "http://x.example/{{ a"
          - id: b
            event: X
            filter: {q: {regex: "("}}
            request: {url: "http://x.example/", headers: {Host: evil}}
          - id: a
            event: X
            request: {url: "http://x.example/"}
        """, {
        "10-a.yaml": """
            hooks:
              - id: c
                event: X
                signing: {secret: "nope!"}
                request: {url: "http://x.example/", body: "{}", raw_body: "{}"}
            """,
        "20-b.yaml": """
            hooks:
              - id: b
                event: X
                rate_limit: fast
                request: {url: "http://x.example/"}
            """,
    })
    issues = tree.issues()
    main, a, b = tree.path(MAIN), tree.path("hooks.d/10-a.yaml"), tree.path("hooks.d/20-b.yaml")
    assert [(i.file, i.line, i.path) for i in issues] == [
        (main, 2, "kafka.group_id"),
        (main, 4, "delivery.timeout"),
        (main, 9, "hooks[0].request.method"),
        (main, 10, "hooks[0].request.url"),
        (main, 13, "hooks[1].filter.q.regex"),
        (main, 14, "hooks[1].request.headers.Host"),
        (main, 15, "hooks[2].id"),
        (a, 4, "hooks[0].signing.secret"),
        (a, 5, "hooks[0].request"),
        (b, 2, "hooks[0].id"),
        (b, 4, "hooks[0].rate_limit"),
    ], [str(i) for i in issues]
    assert len(issues) == 11
    assert issues[6].message == f"duplicate hook id 'a' (first at {main}:6)"
    assert issues[9].message == f"duplicate hook id 'b' (first at {main}:11)"
    assert str(ConfigError(issues)).count("\n") == 10


# ------------------------------------------------------------------------- valid trees


def hook_yaml(hook_id: str, event: str = "X") -> str:
    return f"""
        hooks:
          - id: {hook_id}
            event: {event}
            request: {{url: "http://x.example/{hook_id}"}}
        """


def test_missing_hooks_dir_is_no_error(write_config: WriteConfig) -> None:
    tree = write_config(hook_yaml("inline") + "hooks_dir: not-there\n")
    runtime = load_config(tree.main, environ={})
    assert [h.id for h in runtime.hooks] == ["inline"]
    assert runtime.files == (str(tree.main),)


def test_empty_main_file_gives_defaults(write_config: WriteConfig) -> None:
    runtime = load_config(write_config("").main, environ={})
    assert runtime.hooks == ()
    assert runtime.config.kafka.topics == ["cc.events"]
    assert runtime.config.delivery.timeout == 10.0
    assert runtime.config.delivery.retry.schedule[0] == 5.0
    assert runtime.config.delivery.retry.schedule[-1] == 86400.0
    assert runtime.config.shutdown_timeout == 20.0


def test_missing_main_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", environ={})
    assert [str(i) for i in caught.value.issues] == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_hooks_dir_files_load_in_name_order(write_config: WriteConfig) -> None:
    tree = write_config(hook_yaml("inline"), {
        "20-b.yaml": hook_yaml("from-20"),
        "05-c.yaml": hook_yaml("from-05"),
        "10-a.yaml": """
            hooks:
              - {id: from-10, event: X, request: {url: "http://x.example/"}}
              - {id: from-10-second, event: X, request: {url: "http://x.example/"}}
            """,
        "99-notes.txt": "not: [yaml",
        "50-other.yml": "not: [yaml",
    })
    runtime = load_config(tree.main, environ={})
    assert [h.id for h in runtime.hooks] == [
        "inline", "from-05", "from-10", "from-10-second", "from-20"]
    assert runtime.files == tuple(tree.path(n) for n in (
        MAIN, "hooks.d/05-c.yaml", "hooks.d/10-a.yaml", "hooks.d/20-b.yaml"))
    assert [h.id for h in runtime.config.hooks] == [h.id for h in runtime.hooks]


def test_hooks_dir_may_be_renamed_or_absolute(write_config: WriteConfig, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.yaml").write_text("hooks:\n  - {id: abs, event: X, request: "
                                      "{url: 'http://x.example/'}}\n")
    tree = write_config(f"hooks_dir: {elsewhere}\n", {"x.yaml": hook_yaml("ignored")})
    assert [h.id for h in load_config(tree.main, environ={}).hooks] == ["abs"]


def test_empty_hooks_dir_file_is_allowed(write_config: WriteConfig) -> None:
    tree = write_config(hook_yaml("inline"), {"10-empty.yaml": "", "20-none.yaml": "hooks:\n"})
    assert [h.id for h in load_config(tree.main, environ={}).hooks] == ["inline"]


def test_sample_config_loads() -> None:
    runtime = load_config(SAMPLE_CONFIG, environ={})
    assert [h.id for h in runtime.hooks] == [
        "crm-answered", "queue-lifecycle", "abandoned-long-wait", "dialer-member-end",
        "call-ringing-popup", "call-reporting-prod", "ivr-journey", "svc-abandoned",
        "svc-outbound", "svc-workitem-closed"]
    assert len(runtime.hooks) == 10
    assert len(runtime.files) == 5
    assert runtime.config.delivery.allow_networks == ["127.0.0.0/8"]
    by_id = {h.id: h for h in runtime.hooks}
    assert by_id["crm-answered"].schedule == (1.0, 10.0, 60.0, 600.0, 3600.0)
    assert by_id["queue-lifecycle"].schedule == tuple(runtime.config.delivery.retry.schedule)
    assert by_id["call-reporting-prod"].timeout == 5.0
    assert by_id["ivr-journey"].timeout == 10.0
    assert by_id["call-reporting-prod"].signer is not None
    assert len(by_id["call-reporting-prod"].signer.keys) == 2
    rate = runtime.config.hooks[9].rate_limit
    assert rate == "20/s" and (rate.limit, rate.period) == (20.0, 1.0)  # parsed at load


@pytest.mark.parametrize(("listen", "host", "port"), [
    ("127.0.0.1:8081", "127.0.0.1", 8081), ("[::1]:9100", "::1", 9100),
    ("0.0.0.0:0", "0.0.0.0", 0)])
def test_health_listen_is_parsed_once_at_load(listen: str, host: str, port: int) -> None:
    parsed = Config.model_validate({"health": {"listen": listen}}).health.listen
    assert (parsed, parsed.host, parsed.port) == (listen, host, port)
    assert Config.model_validate({}).health.listen.port == 8081  # the default, parsed too


def test_env_file_and_cred_secrets_are_substituted(write_config: WriteConfig) -> None:
    tree = write_config("""
        kafka:
          security: {protocol: SASL_SSL, sasl_mechanism: PLAIN, username: "${env:KAFKA_USER}",
                     password: "${cred:kafka_password}"}
        hooks:
          - id: a
            event: X
            auth: {type: api_key, value: "${file:secrets/api_key}"}
            request:
              url: "http://x.example/?k=${env:QUERY_KEY}"
        """, extra={"secrets/api_key": "file-api-key-value\n",
                    "creds/kafka_password": "cred-kafka-password"})
    runtime = load_config(tree.main, environ={
        "KAFKA_USER": "svc-hookd", "QUERY_KEY": "env-query-key",
        "CREDENTIALS_DIRECTORY": str(tree.root / "creds")})
    security = runtime.config.kafka.security
    assert (security.username, security.password) == ("svc-hookd", "cred-kafka-password")
    hook = runtime.hooks[0]
    assert hook.static_headers == (("x-api-key", "file-api-key-value"),)
    assert hook.config.request.url == "http://x.example/?k=env-query-key"
    assert {"file-api-key-value", "cred-kafka-password", "env-query-key", "svc-hookd"} <= set(
        runtime.secrets)


def test_secret_file_absolute_path(write_config: WriteConfig, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "token"
    secret.parent.mkdir()
    secret.write_text("absolute-token\r\n")
    tree = write_config(f"""
        hooks:
          - id: a
            event: X
            auth: {{type: bearer, token: "${{file:{secret}}}"}}
            request: {{url: "http://x.example/"}}
        """)
    hook = load_config(tree.main, environ={}).hooks[0]
    assert hook.static_headers == (("authorization", "Bearer absolute-token"),)


def test_timeout_and_schedule_defaults_and_overrides(write_config: WriteConfig) -> None:
    tree = write_config("""
        delivery:
          timeout: 7s
          retry: {schedule: [2s, 1m]}
        hooks:
          - id: defaults
            event: X
            request: {url: "http://x.example/"}
          - id: own
            event: X
            request: {url: "http://x.example/", timeout: 250ms}
            retry: {schedule: [1s, 10s, 1h30m]}
        """)
    defaults, own = load_config(tree.main, environ={}).hooks
    assert (defaults.timeout, defaults.schedule) == (7.0, (2.0, 60.0))
    assert (own.timeout, own.schedule) == (0.25, (1.0, 10.0, 5400.0))


def test_disabled_hook_is_compiled_but_never_matched(write_config: WriteConfig) -> None:
    tree = write_config("""
        hooks:
          - id: disabled
            enabled: false
            event: Answered
            request: {url: "http://x.example/"}
          - id: enabled
            event: answered
            request: {url: "http://x.example/"}
        """)
    runtime = load_config(tree.main, environ={})
    assert [h.id for h in runtime.hooks] == ["disabled", "enabled"]
    assert [h.id for h in runtime.index.match("ANSWERED", {})] == ["enabled"]
    assert runtime.hook("disabled") is runtime.hooks[0]
    assert runtime.hook("missing") is None


def test_generation_is_carried(write_config: WriteConfig) -> None:
    runtime = load_config(write_config(hook_yaml("a")).main, environ={}, generation=7)
    assert runtime.generation == 7


def test_runtime_secrets_collect_every_kind(write_config: WriteConfig) -> None:
    tree = write_config("""
        hooks:
          - id: key
            event: X
            auth: {type: api_key, value: literal-api-key}
            request: {url: "http://x.example/"}
          - id: basic
            event: X
            auth: {type: basic, username: u, password: literal-password}
            request: {url: "http://x.example/"}
          - id: bearer
            event: X
            auth: {type: bearer, token: literal-bearer}
            signing: {secret: [whsec_g4dtUC07hnLrHs7aZYFDyBOph50j11SE,
                               whsec_Wo0t8H//vZeveuDBb0mRkOprKweTe1T9]}
            request: {url: "http://x.example/"}
          - id: oauth
            event: X
            auth: {type: oauth2, token_url: "https://id.example/token", client_id: c,
                   client_secret: literal-client-secret}
            request: {url: "http://x.example/"}
        """)
    secrets = load_config(tree.main, environ={}).secrets
    assert secrets >= {"literal-api-key", "literal-password", "literal-bearer",
                       "literal-client-secret", "whsec_g4dtUC07hnLrHs7aZYFDyBOph50j11SE",
                       "whsec_Wo0t8H//vZeveuDBb0mRkOprKweTe1T9", "dTpsaXRlcmFsLXBhc3N3b3Jk"}
    assert "u" not in secrets and "c" not in secrets


def test_default_config_path() -> None:
    assert default_config_path({"HOOKD_CONFIG": "/srv/hookd.yaml"}) == "/srv/hookd.yaml"
    assert default_config_path({"HOOKD_CONFIG": ""}) == DEFAULT_PATH == "/etc/hookd/hookd.yaml"
    assert default_config_path({}) == DEFAULT_PATH


def test_default_config_path_reads_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKD_CONFIG", "/from/env.yaml")
    assert default_config_path() == "/from/env.yaml"


def test_load_config_uses_process_environment_by_default(
        write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = write_config("""
        hooks:
          - {id: a, event: X, auth: {type: bearer, token: "${env:HOOKD_TEST_TOKEN}"},
             request: {url: "http://x.example/"}}
        """)
    monkeypatch.setenv("HOOKD_TEST_TOKEN", "from-os-environ")
    assert "from-os-environ" in load_config(tree.main).secrets
    monkeypatch.delenv("HOOKD_TEST_TOKEN")
    with pytest.raises(ConfigError, match="environment variable HOOKD_TEST_TOKEN is not set"):
        load_config(tree.main)


# ------------------------------------------------------------------------- model details


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("50/s", (50.0, 1.0), id="per-second"),
    pytest.param("600/m", (600.0, 60.0), id="per-minute"),
    pytest.param(" 2.5 / h ", (2.5, 3600.0), id="spaces-and-fraction"),
    pytest.param("10/ms", (10.0, 0.001), id="per-millisecond"),
])
def test_parse_rate(text: str, expected: tuple[float, float]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["50", "50/d", "-1/s", "0/s", "x/s", "50/"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid rate"):
        parse_rate(text)


@pytest.mark.parametrize(("secret", "length"), [
    pytest.param("whsec_g4dtUC07hnLrHs7aZYFDyBOph50j11SE", 24, id="prefixed"),
    pytest.param("g4dtUC07hnLrHs7aZYFDyBOph50j11SE", 24, id="bare"),
    pytest.param("whsec_" + "A" * 44, 33, id="long"),
])
def test_signing_key(secret: str, length: int) -> None:
    assert len(signing_key(secret)) == length


def test_single_values_become_lists() -> None:
    config = Config.model_validate({
        "kafka": {"bootstrap_servers": "b:9092", "topics": "t"},
        "hooks": [{"id": "a", "event": "Answered", "request": {"url": "http://x/"},
                   "signing": {"secret": "whsec_g4dtUC07hnLrHs7aZYFDyBOph50j11SE"}}]})
    assert config.kafka.bootstrap_servers == ["b:9092"]
    assert config.kafka.topics == ["t"]
    assert config.hooks[0].event == ["Answered"]
    assert config.hooks[0].signing is not None
    assert config.hooks[0].signing.secret == ["whsec_g4dtUC07hnLrHs7aZYFDyBOph50j11SE"]
    assert config.hooks[0].request.method == "POST"

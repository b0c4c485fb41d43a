"""hookd.requests.proxy and hookd.config.proxies: proxy URLs, no_proxy as curl and requests
read it, a hook's route, credentials as secrets, errors located in the file."""

from __future__ import annotations

import pytest

from hookd.config.proxies import ProxyUrl, no_proxy_entry
from hookd.pipeline.runtime import load_config
from hookd.requests.proxy import NoProxy, Proxy, proxy_secrets, route_of
from hookd.requests.target import target_of
from hookd.telemetry.redact import Redactor
from tests.unit.conftest import WriteConfig

NO_PROXY = ["example.com", ".corp.test", "10.0.0.0/8", "192.168.1.7", "api.partner.test:8443",
            "[::1]", "fd00::/8"]


@pytest.mark.parametrize(("host", "port", "bypass"), [
    ("example.com", 443, True),          # the name itself
    ("api.example.com", 443, True),      # and its subdomains
    ("API.Example.COM.", 443, True),     # any case, a trailing dot
    ("notexample.com", 443, False),      # a suffix, but not at a dot
    ("corp.test", 80, True),             # a leading dot changes nothing (curl 7.86+, requests)
    ("crm.corp.test", 80, True),
    ("10.20.30.40", 80, True),           # in the CIDR
    ("11.0.0.1", 80, False),
    ("192.168.1.7", 80, True),           # one address
    ("192.168.1.8", 80, False),
    ("api.partner.test", 8443, True),    # host:port: that port only
    ("api.partner.test", 443, False),
    ("::1", 443, True),
    ("fd00::1", 443, True),
    ("crm.example.net", 443, False),
    ("10.example.org", 80, False),       # a name is not matched against the CIDRs
])
def test_no_proxy_as_curl_and_requests_read_it(host: str, port: int, bypass: bool) -> None:
    entries = [no_proxy_entry(e) for e in NO_PROXY]
    assert NoProxy(entries).bypass(host, port) is bypass


def test_a_star_bypasses_everything() -> None:
    assert NoProxy(["*"]).bypass("crm.example.com", 443)


@pytest.mark.parametrize("bad", ["", "a b", "http://x/", "host:99999", "*.example.com",
                                 "user@host"])
def test_bad_no_proxy_entries(bad: str) -> None:
    with pytest.raises(ValueError):
        no_proxy_entry(bad)


def test_a_proxy_url_is_parsed_once_with_its_credentials_masked() -> None:
    url = ProxyUrl("http://ann:s%40cret@proxy.corp:3128")
    assert (url.host, url.port, url.username, url.password) == ("proxy.corp", 3128, "ann",
                                                                "s@cret")
    assert url.shown == "http://***@proxy.corp:3128"
    proxy = Proxy.of(url)
    assert proxy.authorization == "Basic YW5uOnNAY3JldA=="  # base64("ann:s@cret")
    assert "cret" not in repr(proxy)
    assert proxy_secrets(url) == {"s@cret", "YW5uOnNAY3JldA=="}
    assert ProxyUrl("http://[::1]:3128").shown == "http://[::1]:3128"


def test_absolute_form_for_plain_http() -> None:
    proxy = Proxy.of(ProxyUrl("http://u:p@proxy:3128"))
    headers: dict[str, str] = {}
    target = proxy.absolute(target_of("http://crm.test:8080/a/b?c=1"), headers)
    assert target.path == "http://crm.test:8080/a/b?c=1"
    assert headers == {"Proxy-Authorization": "Basic dTpw"}
    assert proxy.absolute(target_of("http://[::1]/x"), {}).path == "http://[::1]/x"


def test_a_hooks_route() -> None:
    default, own = ProxyUrl("http://proxy.corp:3128"), ProxyUrl("http://other:8080")
    no_proxy = NoProxy(["internal.test"])
    assert route_of(None, None, no_proxy) is None
    assert route_of("none", default, no_proxy) is None  # `proxy: none`: direct
    route = route_of(None, default, no_proxy)
    assert route is not None and route.proxy.shown == "http://proxy.corp:3128"
    via = route.via(target_of("https://crm.example.com/x"))
    assert via is not None and via[0] == "https://crm.example.com:443 via http://proxy.corp:3128"
    assert route.via(target_of("https://a.internal.test/x")) is None  # no_proxy
    mine = route_of(own, default, no_proxy)
    assert mine is not None and mine.proxy.host == "other"


def test_config_errors_are_located(write_config: WriteConfig) -> None:
    tree = write_config("""
        delivery:
          proxy: https://proxy.corp:3128
          no_proxy: [example.com, "bad entry"]
        hooks_dir: null
        hooks:
          - id: a
            event: X
            request: {url: "https://crm.example/"}
            proxy: http://proxy.corp
        """)
    shown = [str(i).replace(str(tree.root) + "/", "") for i in tree.issues()]
    assert shown == [
        "hookd.yaml:2: delivery.proxy: a proxy URL is http://host:port, with user:password@ "
        "before the host if the proxy asks for credentials (hookd talks plain HTTP to the "
        "proxy, and TLS to https endpoints through a CONNECT tunnel), not https",
        "hookd.yaml:3: delivery.no_proxy[1]: no_proxy entry 'bad entry' is neither a host "
        "name, an IP address nor a CIDR",
        "hookd.yaml:9: hooks[0].proxy: a proxy URL needs its port, e.g. "
        "http://proxy.corp:3128",
    ]


def test_proxy_credentials_are_secrets(write_config: WriteConfig) -> None:
    tree = write_config("""
        delivery:
          proxy: "http://ann:${env:PROXY_PASSWORD}@proxy.corp:3128"
        hooks_dir: null
        hooks:
          - {id: a, event: X, request: {url: "https://crm.example/"}}
          - {id: b, event: X, request: {url: "https://crm.example/"}, proxy: none}
          - {id: c, event: X, request: {url: "https://crm.example/"},
             proxy: "http://bob:written-in-the-file@proxy2.corp:8080"}
        """)
    runtime = load_config(tree.main, environ={"PROXY_PASSWORD": "from-the-env"})
    assert {"from-the-env", "written-in-the-file"} <= runtime.secrets
    mask = Redactor(runtime.secrets)
    hooks = {h.id: h for h in runtime.hooks}
    assert hooks["a"].endpoint == "https://crm.example:443 via http://***@proxy.corp:3128"
    assert hooks["b"].endpoint == "https://crm.example:443" and hooks["b"].proxy is None
    assert hooks["c"].endpoint == "https://crm.example:443 via http://***@proxy2.corp:8080"
    said = mask(f"proxy {runtime.config.delivery.proxy} said written-in-the-file")
    assert "from-the-env" not in said and "written-in-the-file" not in said

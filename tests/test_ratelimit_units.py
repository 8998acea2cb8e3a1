"""Units behind rate limiting: settings, policies, client addresses, the limiter's fault policy."""

from __future__ import annotations

import asyncio
import logging

import pytest
from limits.aio.storage import MemoryStorage
from limits.errors import StorageError
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from backends.errors import InvalidToken, MissingCredentials
from backends.ratelimit import Decision, Policy, open_rate_limit, parse_limits
from backends.ratelimit.limits import LimitsRateLimit
from backends.ratelimit.memory import MemoryRateLimit
from backends.storage.urls import STORE_SCHEMES, check_store_url
from tests.clock import FakeClock
from tests.conftest import GENEROUS_LIMITS
from tests.ratelimit_support import closed_port
from webapp.config.fields import SettingsError
from webapp.config.settings import Settings
from webapp.service.services import request_limits
from webapp.web.clientip import ClientAddresses, parse_address
from webapp.web.ratelimit import is_failed_guess

# --- settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JOTGUARD_RATELIMIT_STORAGE", "memcached://127.0.0.1"),
        ("JOTGUARD_RATELIMIT_STORAGE", "redis://"),
        ("JOTGUARD_RATELIMIT_DEFAULT", "lots"),
        ("JOTGUARD_RATELIMIT_DEFAULT", "0/minute"),
        ("JOTGUARD_RATELIMIT_TOKEN", "10/minute;20/minute"),
        ("JOTGUARD_RATELIMIT_TOKEN", ""),
        ("JOTGUARD_RATELIMIT_ADMIN", "10/fortnight"),
        ("JOTGUARD_RATELIMIT_API", "-1/second"),
        ("JOTGUARD_RATELIMIT_PREAUTH", "many per minute"),
        ("JOTGUARD_RATELIMIT_FAILED_AUTH", "10"),
        ("JOTGUARD_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
        ("JOTGUARD_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("JOTGUARD_RATELIMIT_FAIL_CLOSED", "maybe"),
        ("JOTGUARD_RATELIMIT_IPV6_PREFIX", "129"),
        ("JOTGUARD_RATELIMIT_IPV6_PREFIX", "sixty-four"),
        ("JOTGUARD_RATELIMIT_TIMEOUT", "0"),
        ("JOTGUARD_RATELIMIT_TIMEOUT", "soon"),
        ("JOTGUARD_RATELIMIT_KEY_PREFIX", "two words"),
        ("JOTGUARD_RATELIMIT_INTROSPECT", "offf"),
        ("JOTGUARD_RATELIMIT_PASSWORD", "5/minute;6/minute"),
        ("JOTGUARD_RATELIMIT_PASSWORD_IP", "none"),
        ("JOTGUARD_RATELIMIT_MAX_KEYS", "10"),
        ("JOTGUARD_CLIENT_IP_HEADER", "x-client-ip"),
    ],
)
def test_bad_rate_limit_settings_name_the_variable(tmp_path, variable, value):
    environ = {"JOTGUARD_ENV_FILE": str(tmp_path / "absent.env"), variable: value}
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ=environ)
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    ["", "memory://x", "memory:", "redis://", "redis://:pw@/0", "mongodb://h/db", "sqlite:///r.db"],
)
def test_a_rate_limit_storage_outside_its_schemes_is_refused_as_before(url):
    with pytest.raises(ValueError, match=r"^must be memory:// or a redis://host:port/db URL$"):
        check_store_url("ratelimit", url)


def test_the_rate_limit_schemes_are_a_subset_of_the_one_table_and_each_opens():
    schemes = STORE_SCHEMES["ratelimit"]
    assert set(schemes) <= set(STORE_SCHEMES["revocation"])
    for scheme in schemes:
        url = "memory://" if scheme == "memory" else f"{scheme}://127.0.0.1:6379/0"
        assert check_store_url("ratelimit", f" {url} ") == url
        backend = MemoryRateLimit if scheme == "memory" else LimitsRateLimit
        assert isinstance(open_rate_limit(url), backend)  # connects lazily: nothing to close


POLICY_VARIABLES = list(GENEROUS_LIMITS)


@pytest.mark.parametrize("variable", POLICY_VARIABLES)
def test_every_policy_can_be_turned_off_by_name_alone(tmp_path, variable):
    environ = {"JOTGUARD_ENV_FILE": str(tmp_path / "absent.env"), variable: " OFF "}
    limits = request_limits(Settings.load(environ=environ))
    configured = {
        **limits.policies,
        "preauth": limits.preauth,
        "failed-auth": limits.failed_auth,
        "password": limits.password,
        "password-ip": limits.password_ip,
    }
    off = [name for name, policy in configured.items() if policy is None]
    assert off == [variable.removeprefix("JOTGUARD_RATELIMIT_").lower().replace("_", "-")]


def test_a_bad_limit_says_off_is_allowed(tmp_path):
    environ = {"JOTGUARD_ENV_FILE": str(tmp_path / "absent.env"), "JOTGUARD_RATELIMIT_API": "x"}
    with pytest.raises(SettingsError, match="or off"):
        Settings.load(environ=environ)


def test_client_address_defaults(tmp_path):
    settings = Settings.load(environ={"JOTGUARD_ENV_FILE": str(tmp_path / "absent.env")})
    assert (settings.client_ip_header, settings.ratelimit_ipv6_prefix) == ("x-forwarded-for", 56)
    limits = request_limits(settings)
    assert limits.addresses.ipv6_prefix == 56
    assert "no trusted proxies" in limits.addresses.describe()
    behind = Settings.load(
        environ={
            "JOTGUARD_ENV_FILE": str(tmp_path / "absent.env"),
            "JOTGUARD_TRUSTED_PROXIES": "10.0.0.0/8",
            "JOTGUARD_CLIENT_IP_HEADER": "Forwarded",
        }
    )
    described = request_limits(behind).addresses.describe()
    assert described == "Forwarded from the trusted proxies 10.0.0.0/8, else the peer"


def test_rate_limit_settings_parse(tmp_path):
    settings = Settings.load(
        environ={
            "JOTGUARD_ENV_FILE": str(tmp_path / "absent.env"),
            "JOTGUARD_RATELIMIT_STORAGE": " rediss://cache.internal:6380/2 ",
            "JOTGUARD_RATELIMIT_TOKEN": "10 per minute; 100/hour",
            "JOTGUARD_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,2001:db8::/32",
            "JOTGUARD_RATELIMIT_FAIL_CLOSED": "yes",
        }
    )
    assert settings.ratelimit_storage == "rediss://cache.internal:6380/2"
    assert [str(n) for n in settings.trusted_proxies] == [
        "10.0.0.0/8",
        "192.0.2.7/32",
        "2001:db8::/32",
    ]
    assert settings.ratelimit_fail_closed is True
    assert [i.amount for i in parse_limits(settings.ratelimit_token)] == [10, 100]


def test_cli_exits_2_with_one_line_on_a_bad_limit(tmp_path, capsys, monkeypatch):
    from webapp.cli.main import main

    monkeypatch.setenv("JOTGUARD_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("JOTGUARD_RATELIMIT_TOKEN", "ten a minute")
    assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jotguard: JOTGUARD_RATELIMIT_TOKEN: must be limits")
    assert err.count("\n") == 1


# --- policies --------------------------------------------------------------------------


def test_policy_orders_limits_by_window():
    policy = Policy("token", "100/hour;10/minute", "moving-window")
    assert [(i.amount, i.window) for i in policy.items] == [(10, 60), (100, 3600)]


@pytest.mark.parametrize(
    ("name", "limits", "strategy"),
    [
        ("has space", "1/second", "moving-window"),
        ("", "1/second", "moving-window"),
        ("ok", "1/second", "token-bucket"),
        ("ok", "nothing", "moving-window"),
    ],
)
def test_bad_policies_are_refused_when_declared(name, limits, strategy):
    with pytest.raises(ValueError, match=r"policy|limits"):
        Policy(name, limits, strategy)


def test_only_guesses_spend_the_failed_auth_budget():
    assert is_failed_guess(InvalidToken("bad signature", reason="invalid_signature"))
    assert is_failed_guess(InvalidToken("unknown key", reason="unknown_key"))
    assert not is_failed_guess(InvalidToken("expired", reason="expired"))
    assert not is_failed_guess(InvalidToken("revoked", reason="revoked"))
    assert not is_failed_guess(MissingCredentials())


# --- client addresses --------------------------------------------------------------------


def request(peer: str, **headers: str) -> HTTPServerRequest:
    names = {
        "xff": "X-Forwarded-For",
        "real": "X-Real-IP",
        "fwd": "Forwarded",
        "auth": "Authorization",
    }
    h = HTTPHeaders({"Host": "jotguard.test"})
    for short, value in headers.items():
        h.add(names[short], value)
    req = HTTPServerRequest(start_line=RequestStartLine("POST", "/", "HTTP/1.1"), headers=h)
    req.remote_ip = peer
    return req


PROXIES = ClientAddresses(["10.0.0.0/8", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # Untrusted peers: forwarding headers are theirs to write, never believed.
        ("198.51.100.1", {"xff": "203.0.113.5"}, "198.51.100.1"),
        ("198.51.100.1", {"real": "203.0.113.5"}, "198.51.100.1"),
        # A trusted proxy: the right-most untrusted address.
        ("10.0.0.2", {"xff": "203.0.113.5"}, "203.0.113.5"),
        ("10.0.0.2", {"xff": "6.6.6.6, 203.0.113.5, 10.1.1.1"}, "203.0.113.5"),
        ("10.0.0.2", {"xff": "6.6.6.6, 203.0.113.5", "real": "1.1.1.1"}, "203.0.113.5"),
        # Only the configured header is read (X-Forwarded-For by default).
        ("10.0.0.2", {"real": "203.0.113.6"}, "10.0.0.2"),
        ("10.0.0.2", {"fwd": "for=203.0.113.6"}, "10.0.0.2"),
        ("10.0.0.2", {}, "10.0.0.2"),
        ("10.0.0.2", {"xff": "10.0.0.9, 10.0.0.8"}, "10.0.0.9"),
        # Garbage where the trusted hop put an address: stay with that hop.
        ("10.0.0.2", {"xff": "203.0.113.5, unknown"}, "10.0.0.2"),
        ("10.0.0.2", {"xff": "not-an-ip, 10.0.0.7"}, "10.0.0.7"),
        # Ports, brackets, mapped and zoned addresses as proxies write them.
        ("10.0.0.2", {"xff": "203.0.113.5:4711"}, "203.0.113.5"),
        ("10.0.0.2", {"xff": "[2001:db8::5]:443"}, "2001:db8::5"),
        ("::ffff:10.0.0.2", {"xff": "::ffff:203.0.113.5"}, "203.0.113.5"),
        ("2001:db8:ffff::1", {"xff": "fe80::1%eth0"}, "fe80::1"),
    ],
)
def test_client_address(peer, headers, client):
    assert str(PROXIES.client(request(peer, **headers))) == client


REAL_IP = ClientAddresses(["10.0.0.0/8"], header="x-real-ip")
FORWARDED = ClientAddresses(["10.0.0.0/8", "2001:db8:ffff::/48"], header="forwarded")


@pytest.mark.parametrize(
    ("addresses", "peer", "headers", "client"),
    [
        # nginx's proxy_set_header X-Real-IP $remote_addr, passing the client's XFF on.
        (REAL_IP, "10.0.0.2", {"real": "203.0.113.6", "xff": "6.6.6.6"}, "203.0.113.6"),
        (REAL_IP, "10.0.0.2", {"xff": "6.6.6.6"}, "10.0.0.2"),
        (REAL_IP, "198.51.100.1", {"real": "203.0.113.6"}, "198.51.100.1"),
        # RFC 7239: the right-most untrusted for=, quoted, bracketed, with ports.
        (FORWARDED, "10.0.0.2", {"fwd": "for=203.0.113.5;proto=https"}, "203.0.113.5"),
        (
            FORWARDED,
            "10.0.0.2",
            {"fwd": 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";by=10.0.0.2, for=10.1.1.1'},
            "2001:db8:cafe::17",
        ),
        (FORWARDED, "10.0.0.2", {"fwd": 'For="203.0.113.5:8443"', "xff": "6.6.6.6"}, "203.0.113.5"),
        # unknown, obfuscated, or no for= at all: nothing further left is believed.
        (FORWARDED, "10.0.0.2", {"fwd": "for=203.0.113.5, for=unknown"}, "10.0.0.2"),
        (FORWARDED, "10.0.0.2", {"fwd": "for=203.0.113.5, for=_hidden"}, "10.0.0.2"),
        (FORWARDED, "10.0.0.2", {"fwd": "for=203.0.113.5, proto=https"}, "10.0.0.2"),
        (FORWARDED, "10.0.0.2", {"fwd": 'for="203.0.113.5,6.6.6.6"'}, "10.0.0.2"),
    ],
)
def test_client_address_from_the_configured_header(addresses, peer, headers, client):
    assert str(addresses.client(request(peer, **headers))) == client


def test_an_unknown_client_ip_header_is_refused():
    with pytest.raises(ValueError, match="header must be one of"):
        ClientAddresses(header="x-client-ip")


def test_forwarded_for_split_over_several_headers_is_one_chain():
    req = request("10.0.0.2")
    req.headers.add("X-Forwarded-For", "203.0.113.5")
    req.headers.add("X-Forwarded-For", "10.0.0.3")
    assert str(PROXIES.client(req)) == "203.0.113.5"


@pytest.mark.parametrize(
    ("prefix", "address", "key"),
    [
        (56, "2001:db8:1:2ff:3:4:5:6", "2001:db8:1:200::/56"),
        (64, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        (48, "2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"),
        (128, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"),
        (64, "203.0.113.5", "203.0.113.5"),
    ],
)
def test_ipv6_clients_are_keyed_by_network(prefix, address, key):
    assert ClientAddresses(ipv6_prefix=prefix).key(request(address)) == key


def test_unknown_peer_address_gets_one_shared_key():
    assert ClientAddresses().key(request("")) == "unknown"
    assert parse_address("[broken") is None


# --- the limiter: strategies and its storage-fault policy --------------------------------------


async def test_hit_peek_and_usage_on_memory():
    limiter = open_rate_limit("memory://")
    policy = Policy("p", "2/minute;3/hour", "moving-window")
    assert (await limiter.hit(policy, "k")).allowed
    assert (await limiter.peek(policy, "k")).allowed
    assert (await limiter.hit(policy, "k")).allowed
    refused = await limiter.hit(policy, "k")
    assert (refused.allowed, refused.exceeded) == (False, 0)
    assert not (await limiter.peek(policy, "k")).allowed
    quotas = await limiter.usage(policy, "k", exceeded=refused.exceeded)
    assert [(q.name, q.limit, q.window, q.remaining) for q in quotas] == [
        ("p-60s", 2, 60, 0),
        ("p-3600s", 3, 3600, 1),
    ]
    assert (await limiter.hit(policy, "other")).allowed
    assert limiter.counts[("p", "limited")] == 2
    await limiter.aclose()


async def test_dead_storage_is_rested_counted_and_logged_once_per_interval(caplog):
    caplog.set_level(logging.WARNING, logger="jotguard.ratelimit")
    clock = FakeClock(1000.0)
    limiter = LimitsRateLimit.redis(
        f"redis://127.0.0.1:{closed_port()}/15", timeout=0.2, monotonic=clock
    )
    policy = Policy("p", "1/minute")

    decisions = [await limiter.hit(policy, "k") for _ in range(3)]
    assert all(d.allowed and d.storage_failed for d in decisions)
    clock.now += 30  # past the rest period: the storage is tried again, still dead
    decisions.append(await limiter.hit(policy, "k"))
    assert limiter.counts[("p", "failed_open")] == 4
    assert len(caplog.records) == 1  # within one log interval
    assert await limiter.usage(policy, "k") is None
    assert await limiter.check() is False

    clock.now += 61
    await limiter.hit(policy, "k")
    assert len(caplog.records) == 2
    assert caplog.records[0].getMessage().endswith("since the last report: 1")
    assert caplog.records[1].getMessage().endswith("since the last report: 4")
    await limiter.aclose()


class FlakyStorage(MemoryStorage):
    """A limits storage whose sliding-window hits hang, fail or answer on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.answer: asyncio.Future[bool] | None = None

    async def acquire_sliding_window_entry(self, key, limit, expiry, amount=1):
        self.calls += 1
        if self.answer is None:
            raise StorageError(ConnectionError("refused"))
        return await self.answer

    async def get_sliding_window(self, key, expiry):
        raise AssertionError("a one-limit hit asks nothing else")


async def test_one_probe_at_a_time_while_the_storage_is_down():
    clock = FakeClock(1000.0)
    storage = FlakyStorage()
    limiter = LimitsRateLimit(storage, timeout=0.5, monotonic=clock)
    policy = Policy("p", "5/minute")

    assert (await limiter.hit(policy, "k")).storage_failed
    for _ in range(3):  # resting: the storage is not asked
        assert (await limiter.hit(policy, "k")).storage_failed
    assert storage.calls == 1

    clock.now += 1.1
    storage.answer = asyncio.get_running_loop().create_future()
    probe = asyncio.create_task(limiter.hit(policy, "k"))
    await asyncio.sleep(0)
    # While the probe hangs, other requests decide without waiting for it.
    # (wait_for only turns a regression into a failure instead of a hang)
    others = [await asyncio.wait_for(limiter.hit(policy, "k"), 5) for _ in range(3)]
    assert all(d.allowed and d.storage_failed for d in others)
    assert storage.calls == 2

    storage.answer.set_result(True)
    assert (await probe) == Decision(True)
    assert (await limiter.hit(policy, "k")) == Decision(True)  # back in service at once
    assert storage.calls == 3
    assert limiter.counts[("p", "failed_open")] == 7
    await limiter.aclose()


async def test_fail_closed_refuses_without_storage():
    limiter = LimitsRateLimit.redis(f"redis://127.0.0.1:{closed_port()}/15", fail_closed=True)
    decision = await limiter.hit(Policy("p", "1/minute"), "k")
    assert (decision.allowed, decision.storage_failed) == (False, True)
    assert limiter.counts[("p", "failed_closed")] == 1
    assert limiter.storage_failures == 1
    await limiter.aclose()

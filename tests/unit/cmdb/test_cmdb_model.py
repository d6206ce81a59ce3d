"""Validation of host records (no database)."""

import pytest

from saltops.cmdb.model import merge_update, validate_host
from saltops.errors import ValidationError
from tests.support.cmdb_kit import INJECTIONS, NON_ASCII, RULES, host


def problems_of(record):
    with pytest.raises(ValidationError) as info:
        validate_host(record, RULES)
    return info.value.problems


def test_valid_record_is_normalised():
    out = validate_host(host("WEB01.BJ.Example.COM.", roles="web,base", ip=" 10.10.1.11 "), RULES)
    assert out["hostname"] == "web01.bj.example.com"
    assert out["roles"] == ["base", "web"]
    assert out["ip"] == "10.10.1.11"
    assert out["status"] == "online"


def test_ipv6_addresses_are_canonical():
    out = validate_host(host(ip="2001:DB8:0:0::1", lines={"bgp": "2001:db8::0:2"}), RULES)
    assert out["ip"] == "2001:db8::1"
    assert out["lines"] == {"bgp": "2001:db8::2"}


@pytest.mark.parametrize(
    "name",
    ["-web.example.com", "web_01.example.com", "web..example.com", "a" * 64 + ".com", "wéb.example.com", ""],
)
def test_hostnames_follow_rfc1123(name):
    assert any("hostname" in p for p in problems_of(host(name)))


@pytest.mark.parametrize("ip", ["10.0.0.256", "10.0.0", "not-an-ip", "1.2.3.4/24", "::g"])
def test_invalid_ips_are_rejected(ip):
    assert any("not an IP address" in p for p in problems_of(host(ip=ip)))
    assert any("lines.telecom" in p for p in problems_of(host(lines={"telecom": ip})))


def test_unknown_sets_are_rejected_with_the_known_values():
    found = problems_of(host(roles=["web", "mailer"], lines={"satellite": "1.2.3.4"}, idc="mars", env="qa"))
    assert "unknown role 'mailer' (known: base, cache, db, lb, monitor, web)" in found
    assert any(p.startswith("unknown line 'satellite'") for p in found)
    assert any(p.startswith("unknown idc 'mars'") for p in found)
    assert any(p.startswith("unknown env 'qa'") for p in found)


def test_every_problem_is_reported_at_once():
    found = problems_of(
        {
            "hostname": "bad_name",
            "ip": "x",
            "roles": ["nope"],
            "status": "gone",
            "colour": "red",
            "owner": "a  b",
        }
    )
    text = "\n".join(found)
    for fragment in (
        "unknown field(s): 'colour'",
        "platform is required",
        "hostname 'bad_name'",
        "ip 'x'",
        "unknown role 'nope'",
        "status 'gone'",
        "owner 'a  b'",
    ):
        assert fragment in text
    assert len(found) == len(set(found))


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize(
    "field", ["hostname", "ip", "platform", "machine_type", "idc", "env", "status", "owner"]
)
def test_injection_strings_are_rejected_in_constrained_fields(field, value):
    found = problems_of(host(**{field: value}))
    assert found, f"{field}={value!r} was accepted"


@pytest.mark.parametrize("field", ["roles", "lines", "apps"])
@pytest.mark.parametrize("value", INJECTIONS[:2])
def test_injection_strings_are_rejected_as_names(field, value):
    shaped = {"roles": [value], "lines": {value: "1.2.3.4"}, "apps": {value: {}}}[field]
    assert problems_of(host(**{field: shaped}))


@pytest.mark.parametrize("owner", NON_ASCII)
def test_owners_may_be_non_ascii(owner):
    assert validate_host(host(owner=owner), RULES)["owner"] == owner


@pytest.mark.parametrize("field", ["hostname", "ip", "platform", "machine_type", "idc", "env", "status"])
@pytest.mark.parametrize("value", NON_ASCII[:2])
def test_non_ascii_is_rejected_where_names_are_ascii(field, value):
    assert problems_of(host(**{field: value}))


def test_app_settings_keep_text_of_any_script_and_reject_what_json_cannot_hold():
    settings = {"title": "商城 — boutique", "weights": [1, 2.5, None, True], "nested": {"k": "Ωμέγα"}}
    assert validate_host(host(apps={"shop": settings}), RULES)["apps"]["shop"] == settings
    assert any("not a finite number" in p for p in problems_of(host(apps={"shop": {"ratio": float("nan")}})))
    assert any("control characters" in p for p in problems_of(host(apps={"shop": {"k": "a\x00b"}})))
    assert any("invalid setting name" in p for p in problems_of(host(apps={"shop": {"bad key": 1}})))
    assert any("invalid app name" in p for p in problems_of(host(apps={"Shop!": {}})))


@pytest.mark.parametrize(
    "field,value",
    [
        ("idc", ["a"]),
        ("env", {"x": 1}),
        ("status", ["online"]),
        ("roles", [{"web": 1}]),
        ("lines", ["telecom"]),
    ],
)
def test_wrongly_typed_fields_are_errors_not_crashes(field, value):
    assert problems_of(host(**{field: value}))


def test_merge_update_keeps_other_fields_and_refuses_renames():
    current = validate_host(host(), RULES)
    merged = merge_update(current, {"status": "maintenance"})
    assert merged["status"] == "maintenance" and merged["roles"] == current["roles"]
    with pytest.raises(ValidationError, match="cannot be changed"):
        merge_update(current, {"hostname": "other.example.com"})

import pytest

from saltops.alarms.matchers import fingerprint, parse_duration, parse_matcher, parse_matchers


@pytest.mark.parametrize(
    "text,labels,expected",
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "warning"}, False),
        ('severity!="critical"', {}, True),
        ('host=~"web0[1-3]"', {"host": "web02"}, True),
        ('host=~"web0[1-3]"', {"host": "web02x"}, False),  # anchored like Alertmanager
        ('host!~"db.*"', {"host": "web01"}, True),
        ('comment="a \\"quoted\\" word"', {"comment": 'a "quoted" word'}, True),
        ("env=prod", {"env": "prod"}, True),
    ],
)
def test_matcher_semantics(text, labels, expected):
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize("bad", ["severity", '1abc="x"', 'a=~"("', 'a=="x"', 42])
def test_bad_matchers_are_refused(bad):
    with pytest.raises(ValueError):
        parse_matcher(bad)


def test_mapping_form_and_round_trip():
    ms = parse_matchers({"env": "prod", "idc": "bj-idc1"})
    assert [str(m) for m in ms] == ['env="prod"', 'idc="bj-idc1"']
    again = parse_matchers([m.to_dict() for m in ms])
    assert [str(m) for m in again] == [str(m) for m in ms]


@pytest.mark.parametrize("value,seconds", [(90, 90), ("90s", 90), ("1m30s", 90), ("2h", 7200), ("500ms", 0.5),
                                            ("1d", 86400)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("bad", ["", "5 minutes", "1x", "-5s", -1, True, None, "m5"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_fingerprint_ignores_order_and_sees_values():
    a = fingerprint({"alertname": "DiskFull", "host": "web01", "mount": "/"})
    b = fingerprint({"mount": "/", "host": "web01", "alertname": "DiskFull"})
    c = fingerprint({"alertname": "DiskFull", "host": "web01", "mount": "/data"})
    assert a == b != c
    assert len(a) == 16


def test_split_matchers_splits_on_commas_outside_quotes():
    from saltops.alarms.matchers import split_matchers

    assert split_matchers('host="web01,web02", alertname=~"Disk.*",x="a\\"b,c"') == [
        'host="web01,web02"', 'alertname=~"Disk.*"', 'x="a\\"b,c"']

"""Rendering on the master: errors name file and line, secrets stay references, output is what Salt writes."""

import hashlib

import pytest
import salt.utils.templates

from saltops.confpush import render
from saltops.errors import ValidationError

RECORD = {"hostname": "web01", "env": "test", "idc": "bj-idc1", "apps": {"shop": {"port": 8080}}}


def _file(template, path="/etc/shop/app.conf"):
    return {"path": path, "template": template}


def test_a_template_sees_the_cmdb_record_the_app_settings_and_the_values():
    out = render.render_file(
        _file("{{ cmdb.idc }} {{ app.port }} {{ values.x }} {{ hostname }}"),
        "web01",
        RECORD,
        "shop",
        {"x": 1},
    )
    assert out["text"] == "bj-idc1 8080 1 web01\n"
    assert out["sha256"] == hashlib.sha256(b"bj-idc1 8080 1 web01\n").hexdigest()
    assert out["secrets"] == {}


def test_the_text_is_normalised_like_file_managed_contents():
    out = render.render_file(_file("a\r\nb\n\nc"), "web01", RECORD, "shop", {})
    assert out["text"] == "a\nb\n\nc\n"


@pytest.mark.parametrize(
    "template, expected",
    [
        ("ok\n{{ values.missing }}\n", "/etc/shop/app.conf line 2: cannot render for web01: UndefinedError"),
        ("ok\nok\n{% if %}\n", "/etc/shop/app.conf line 3: template syntax error"),
    ],
)
def test_a_template_that_does_not_render_names_the_file_and_line(template, expected):
    with pytest.raises(ValidationError) as err:
        render.render_file(_file(template), "web01", RECORD, "shop", {})
    assert str(err.value).startswith(expected), str(err.value)


def test_render_all_lists_every_failing_host_and_refuses():
    with pytest.raises(ValidationError) as err:
        render.render_all(
            {"files": [_file("{{ cmdb.nope }}")], "values": {}},
            "shop",
            [RECORD, dict(RECORD, hostname="web02")],
        )
    assert "no host was touched" in str(err.value)
    assert len(err.value.problems) == 2


def test_the_sandbox_refuses_reaching_into_python():
    with pytest.raises(ValidationError):
        render.render_file(
            _file("{{ ''.__class__.__mro__[1].__subclasses__() }}"), "web01", RECORD, "shop", {}
        )


def _salt_render(template, pillar, tmp_path):
    """Render the minion-side template as file.managed does: its contents normalised, then Salt's Jinja."""
    template = render.normalise_text(template)
    funcs = {
        "pillar.get": lambda key, default=None: pillar.get(key, default),
        "sdb.get": lambda uri: pillar.get(uri, uri),
    }
    ret = salt.utils.templates.render_jinja_tmpl(
        template,
        {
            "salt": funcs,
            "opts": {"cachedir": str(tmp_path), "file_roots": {"base": [str(tmp_path)]}},
            "saltenv": "base",
            "sls": "",
            "pillar": {},
            "grains": {},
        },
    )
    return ret


def test_secrets_become_minion_side_lookups_and_everything_else_stays_literal(tmp_path):
    values = {"pw": "pillar:shop:db_password", "key": "sdb://vault/shop/key"}
    out = render.render_file(
        _file("{% raw %}{{ not jinja }}{% endraw %}\npw={{ values.pw }} key={{ values.key }}\n"),
        "web01",
        RECORD,
        "shop",
        values,
    )
    assert "@@CONFPUSH_SECRET_0@@" in out["text"] and out["secrets"] == {
        "0": "pillar:shop:db_password",
        "1": "sdb://vault/shop/key",
    }
    assert "hunter2" not in out["text"]
    template = render.minion_template(out["text"], out["secrets"])
    text = _salt_render(template, {"shop:db_password": "hunter2", "sdb://vault/shop/key": "k3y"}, tmp_path)
    assert text == "{{ not jinja }}\npw=hunter2 key=k3y\n"


def test_a_secret_missing_on_the_minion_fails_the_render_there(tmp_path):
    out = render.render_file(
        _file("pw={{ values.pw }}\n"), "web01", RECORD, "shop", {"pw": "pillar:shop:nope"}
    )
    with pytest.raises(Exception, match="secret pillar:shop:nope is not set"):
        _salt_render(render.minion_template(out["text"], out["secrets"]), {}, tmp_path)


def test_a_secret_changed_by_a_filter_is_refused():
    with pytest.raises(ValidationError, match="changed by a filter"):
        render.render_file(_file("{{ values.pw | lower }}"), "web01", RECORD, "shop", {"pw": "pillar:a"})

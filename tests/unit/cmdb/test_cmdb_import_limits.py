"""Hostile imports: YAML aliases, deep nesting, oversized documents, paths outside the import
directory, and files that are not hosts at all.  Each gets a clear error, promptly, and
changes nothing; an error never carries more than a short excerpt of what it rejects.
"""

import os
import re

import pytest

from saltops import config
from saltops.cmdb import api, import_export, model
from saltops.errors import ValidationError
from tests.support.cmdb_kit import LB_SERVES, RULES, counts, host

HOST_YAML = """\
- hostname: web01.x.com
  ip: 10.0.0.1
  roles: [web]
  platform: Debian-12
  machine_type: vm
  idc: lab
  env: dev
  owner: ops
"""


def refused(store, text, fmt):
    before = counts(store)
    with pytest.raises(ValidationError) as info:
        import_export.import_hosts(store, "importer", text, fmt, RULES, lb_serves=LB_SERVES)
    assert counts(store) == before, "a refused import changed the database"
    return str(info.value)


@pytest.mark.parametrize(
    "doc",
    [
        # An alias to its own anchor: a loop.
        HOST_YAML + "  apps:\n    shop: &s {loop: *s}\n",
        # Nested aliases: nine levels of ten make 10^9 values out of a few hundred bytes.
        "x0: &a0 [1,1,1,1,1,1,1,1,1,1]\n"
        + "".join(f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
        + "hosts: []\n",
        # An anchor with no alias, and one host's apps reused by the next.
        HOST_YAML.replace("owner: ops", "owner: &o ops"),
        HOST_YAML + "  apps: &apps {shop: {port: 1}}\n" + HOST_YAML.replace("web01", "web02") + "  apps: *apps\n",
    ],
    ids=["loop", "nested", "anchor-only", "shared-apps"],
)
def test_yaml_anchors_and_aliases_are_refused(store, doc):
    message = refused(store, doc, "yaml")
    assert "anchors and aliases are not accepted" in message and "line " in message


def test_deep_yaml_and_deep_json_apps_are_refused_before_they_are_walked(store):
    deep_yaml = HOST_YAML + "  apps:\n    shop: {a: " + "[" * 60 + "]" * 60 + "}\n"
    assert "nests deeper than" in refused(store, deep_yaml, "yaml")
    deep_json = '{"hosts": [{"hostname": "a.x.com", "apps": ' + "[" * 5000 + "]" * 5000 + "}]}"
    # libyaml's scanner stops this one itself (it reads flow collections ahead), with the place.
    assert re.search(r"line 1, column \d+: exceeded maximum nesting depth|nests deeper than", refused(store, deep_json, "json"))
    header = "hostname,ip,roles,platform,machine_type,idc,env,owner,apps\n"
    row = 'a.x.com,10.0.0.1,web,Debian-12,vm,lab,dev,ops,"{""shop"": {""a"": ' + "[" * 20000 + "]" * 20000 + '}}"\n'
    assert "line 2: apps nests deeper than JSON can be read here" in refused(store, header + row, "csv")
    shallow = 'a.x.com,10.0.0.1,web,Debian-12,vm,lab,dev,ops,"{""shop"": {""a"": ' + "[" * 40 + "]" * 40 + '}}"\n'
    assert "apps.shop: settings nested deeper than 32 levels" in refused(store, header + shallow, "csv")


def test_settings_built_from_shared_or_looping_references_are_refused_in_bounded_steps():
    wide = [0] * 100
    for _ in range(4):
        wide = [wide] * 100  # 10^10 values behind a few hundred list objects
    looping = {}
    looping["self"] = looping
    for settings, why in ((wide, "more than"), (looping, "nested deeper than")):
        with pytest.raises(ValidationError) as info:
            model.validate_host(host(apps={"shop": {"k": settings}}), RULES)
        assert f"apps.shop: settings {why}" in str(info.value)


def test_oversized_text_is_refused_before_it_is_parsed():
    for fmt in ("csv", "yaml", "json"):
        limit = import_export.MAX_IMPORT_BYTES[fmt]
        with pytest.raises(ValidationError, match=f"more than the {limit} bytes"):
            import_export.read_source(text="#" * (limit + 1), fmt=fmt)
        # Bytes count, not characters: 3-byte characters reach the limit at a third of it.
        with pytest.raises(ValidationError, match="bytes"):
            import_export.read_source(text="张" * (limit // 3 + 1), fmt=fmt)
    assert import_export.read_source(text="hostname,ip\n", fmt="csv")[0] == "hostname,ip\n"


def test_oversized_and_special_files_are_refused_without_reading_them(tmp_path):
    big = tmp_path / "hosts.yaml"
    with open(big, "wb") as fh:
        fh.truncate(import_export.MAX_IMPORT_BYTES["yaml"] + 1)  # sparse: nothing to read
    with pytest.raises(ValidationError, match="more than the"):
        import_export.read_source(path=str(big), allowed_roots=[str(tmp_path)])
    fifo = tmp_path / "hosts.csv"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    with pytest.raises(ValidationError, match="not a regular file"):
        import_export.read_source(path=str(fifo), allowed_roots=[str(tmp_path)])


def test_paths_are_read_from_the_import_directory_only(store, tmp_path):
    conf = config.load({"cachedir": str(tmp_path / "cache"), "saltops": {"db_url": "sqlite://"}})
    imports = tmp_path / "cache" / "saltops" / "import"
    assert conf["cmdb"]["import_roots"] == [str(imports)]
    imports.mkdir(parents=True)
    (imports / "hosts.yaml").write_text(HOST_YAML, encoding="utf-8")
    assert api.import_hosts(store, conf, "alice", path=str(imports / "hosts.yaml"), dry_run=True)["added"] == [
        "web01.x.com"
    ]
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$saltsaltsalt$hashhashhashhashhash:19000:0:99999:7:::\n")
    (imports / "shadow.csv").symlink_to(secret)
    for path in (str(secret), str(imports / "shadow.csv"), str(imports / ".." / ".." / ".." / "shadow")):
        with pytest.raises(ValidationError, match="outside the directories imports may read from"):
            api.import_hosts(store, conf, "alice", path=path, fmt="csv")
    off = {**conf, "cmdb": {**conf["cmdb"], "import_roots": []}}
    with pytest.raises(ValidationError, match="imports from a path are turned off"):
        api.import_hosts(store, off, "alice", path=str(imports / "hosts.yaml"))
    for bad in ("relative/dir", [1], "/srv/saltops/import"):
        with pytest.raises(config.ConfigError, match="import_roots"):
            config.load({"saltops": {"cmdb": {"import_roots": bad}}})


def test_errors_show_a_short_excerpt_of_what_they_reject(store):
    secret = "root:$6$saltsaltsalt$hashhashhashhashhashhashhashhash:19000:0:99999:7:::"
    text = "hostname,ip\n" + f'"{secret}",10.0.0.1\n' + f'a.x.com,"{secret}"\n'
    message = refused(store, text, "csv")
    assert "hashhash" not in message and "19000" not in message
    assert f"{secret[:model.EXCERPT_CHARS]!r}... ({len(secret)} characters)" in message
    yaml_doc = HOST_YAML.replace("owner: ops", f"owner: '{secret}'\n  {secret.replace(':', '_')}: 1")
    message = refused(store, yaml_doc, "yaml")
    assert "hashhash" not in message and "characters)" in message
    control = refused(store, HOST_YAML.replace("roles: [web]", 'roles: ["web\\u0000\\u001b[2J"]'), "yaml")
    assert "\\x00" in control and "\x00" not in control and "\x1b" not in control


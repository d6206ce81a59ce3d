{%- from "lb/map.jinja" import lb, cmdb, served, frontends, apps with context %}
{%- set servers = apps.values() | map(attribute="servers") | map("length") | sum %}
include:
  - lb.package.install
{%- if served is none %}

# No `cmdb_lb:{{ lb.cmdb_role }}` in the pillar: the CMDB did not say what this
# balancer serves, so its configuration is left as it is.
lb-config-file-test-fail-without-changes:
  test.fail_without_changes:
    - name: {{ lb.haproxy.config }}
    - comment: >-
        pillar cmdb_lb:{{ lb.cmdb_role }} is missing: the haproxy configuration was left
        unchanged (is this host's CMDB record given the {{ lb.cmdb_role }} role, and is the
        saltops_cmdb ext_pillar loaded?)
{%- elif servers < lb.min_backends %}

lb-config-file-test-fail-without-changes:
  test.fail_without_changes:
    - name: {{ lb.haproxy.config }}
    - comment: >-
        the CMDB gives {{ servers }} backend server(s) for {{ served.get("serves", "this balancer") }}
        in env {{ served.get("env", "?") }}, fewer than lb:min_backends ({{ lb.min_backends }}):
        the haproxy configuration was left unchanged
{%- else %}

# haproxy -c checks the candidate before it replaces the file: an invalid
# configuration is never installed, and the running haproxy keeps the old one.
lb-config-file-file-managed:
  file.managed:
    - name: {{ lb.haproxy.config }}
    - source: salt://lb/files/haproxy.cfg.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: {{ lb.haproxy.bin }} -c -q -f
    - context:
        lb: {{ lb | json }}
        frontends: {{ frontends | json }}
        apps: {{ apps | json }}
        version: {{ cmdb.get("version", "unknown") | json }}
        serves: {{ served.get("serves", "") | json }}
        env: {{ served.get("env", "") | json }}
    - require:
      - pkg: lb-package-install-pkg-installed
{%- endif %}

{%- from "base/map.jinja" import base with context %}
{%- if base.time_sync.enabled %}
include:
  - base.package.install

base-config-timesync-file-managed:
  file.managed:
    - name: {{ base.time_sync.config }}
    - source: salt://base/files/chrony.conf.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - context:
        servers: {{ base.time_sync.servers | json }}
    - require:
      - sls: base.package.install
{%- else %}

base-config-timesync-test-nop:
  test.nop:
    - name: time sync is not managed on this host (time_sync.enabled is false)
{%- endif %}

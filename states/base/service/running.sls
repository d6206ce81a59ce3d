{%- from "base/map.jinja" import base with context %}
{%- if base.time_sync.enabled %}
include:
  - base.config.timesync

base-service-running-service-running:
  service.running:
    - name: {{ base.time_sync.service }}
    - enable: true
    - watch:
      - file: base-config-timesync-file-managed
{%- else %}

base-service-running-test-nop:
  test.nop:
    - name: no time daemon to run on this host (time_sync.enabled is false)
{%- endif %}

{%- from "web/map.jinja" import apps with context %}
# One systemd unit per app (config/systemd.sls writes them); a changed unit or
# bootstrap release restarts it.
include:
  - web.config.apps
  - web.config.systemd
{%- for name, app in apps | dictsort if app.get("port") %}

web-service-systemd-running-service-running-{{ name }}:
  service.running:
    - name: saltops-app-{{ name }}
    - enable: true
    - watch:
      - file: web-config-systemd-file-managed-{{ name }}
      - file: web-config-apps-file-managed-bootstrap-{{ name }}
    - require:
      - file: web-config-apps-file-symlink-current-{{ name }}
{%- endfor %}

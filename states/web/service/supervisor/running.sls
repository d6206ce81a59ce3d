{%- from "web/map.jinja" import web, apps with context %}
{#- Salt 3008 ships no supervisord state module: supervisorctl does the work,
    each call guarded so that a second run changes nothing. #}
# supervisord, and one program per app (config/supervisor.sls writes them).
include:
  - web.package.install
  - web.config.apps
  - web.config.supervisor

web-service-supervisor-running-service-running:
  service.running:
    - name: {{ web.app.supervisor_service }}
    - enable: true
    - require:
      - pkg: web-package-install-pkg-installed
{%- for name, app in apps | dictsort if app.get("port") %}

web-service-supervisor-running-cmd-run-update-{{ name }}:
  cmd.run:
    - name: supervisorctl update saltops-app-{{ name }}
    - onchanges:
      - file: web-config-supervisor-file-managed-{{ name }}
    - require:
      - service: web-service-supervisor-running-service-running
      - file: web-config-apps-file-symlink-current-{{ name }}

web-service-supervisor-running-cmd-run-restart-{{ name }}:
  cmd.run:
    - name: supervisorctl restart saltops-app-{{ name }}
    - onchanges:
      - file: web-config-apps-file-managed-bootstrap-{{ name }}
    - require:
      - cmd: web-service-supervisor-running-cmd-run-update-{{ name }}

web-service-supervisor-running-cmd-run-start-{{ name }}:
  cmd.run:
    - name: supervisorctl update saltops-app-{{ name }} && supervisorctl start saltops-app-{{ name }}
    - unless: supervisorctl status saltops-app-{{ name }} | grep -q RUNNING
    - require:
      - cmd: web-service-supervisor-running-cmd-run-restart-{{ name }}
{%- endfor %}

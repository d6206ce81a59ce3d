{%- from "web/map.jinja" import web, apps with context %}
# One supervisor program per app of the host.
include:
  - web.config.apps
{%- for name, app in apps | dictsort if app.get("port") %}

web-config-supervisor-file-managed-{{ name }}:
  file.managed:
    - name: {{ web.app.supervisor_conf_dir }}/saltops-app-{{ name }}.{{ web.app.supervisor_conf_ext }}
    - source: salt://web/files/app.supervisor.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - context:
        name: {{ name | json }}
        app: {{ app | json }}
        app_dir: {{ (web.app.root ~ "/" ~ name) | json }}
        runtime: {{ web.app | json }}
    - require:
      - pkg: web-package-install-pkg-installed
      - user: web-config-apps-user-present
{%- endfor %}

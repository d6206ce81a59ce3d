{%- from "web/map.jinja" import web, apps with context %}
include:
  - web.config
{%- set vhosts = [] %}
{%- for name, app in apps | dictsort if app.get("port") %}
{%-   do vhosts.append({"file": "web-config-vhosts-file-managed-" ~ name}) %}

{%-   if web.app.supervisor == "systemd" %}

web-service-running-app-{{ name }}:
  service.running:
    - name: saltops-app-{{ name }}
    - enable: true
    - watch:
      - file: web-config-apps-file-managed-runtime-{{ name }}
      - file: web-config-apps-file-managed-bootstrap-{{ name }}
    - require:
      - file: web-config-apps-file-symlink-current-{{ name }}
{%-   else %}
{#-   Salt 3008 ships no supervisord state module: supervisorctl does the work,
      each call guarded so that a second run changes nothing. #}

web-service-running-cmd-run-supervisor-update-{{ name }}:
  cmd.run:
    - name: supervisorctl update saltops-app-{{ name }}
    - onchanges:
      - file: web-config-apps-file-managed-runtime-{{ name }}
    - require:
      - service: web-service-running-supervisor
      - file: web-config-apps-file-symlink-current-{{ name }}

web-service-running-cmd-run-supervisor-restart-{{ name }}:
  cmd.run:
    - name: supervisorctl restart saltops-app-{{ name }}
    - onchanges:
      - file: web-config-apps-file-managed-bootstrap-{{ name }}
    - require:
      - cmd: web-service-running-cmd-run-supervisor-update-{{ name }}

web-service-running-app-{{ name }}:
  cmd.run:
    - name: supervisorctl update saltops-app-{{ name }} && supervisorctl start saltops-app-{{ name }}
    - unless: supervisorctl status saltops-app-{{ name }} | grep -q RUNNING
    - require:
      - cmd: web-service-running-cmd-run-supervisor-restart-{{ name }}
{%-   endif %}
{%- endfor %}
{%- if web.app.supervisor != "systemd" %}

web-service-running-supervisor:
  service.running:
    - name: {{ web.app.supervisor_service }}
    - enable: true
    - require:
      - pkg: web-package-install-pkg-installed
{%- endif %}
{%- if web.nginx.default_site %}
{%-   do vhosts.append({"file": "web-config-vhosts-file-absent-default-site"}) %}
{%- endif %}

{%- if vhosts %}

# nginx -t checks the whole configuration before the reload; when it fails the
# reload does not happen and the running nginx keeps serving what it had.
web-service-running-cmd-run-nginx-test:
  cmd.run:
    - name: {{ web.nginx.bin }} -t
    - onchanges: {{ vhosts | json }}
{%- endif %}

web-service-running-service-running-nginx:
  service.running:
    - name: {{ web.nginx.service }}
    - enable: true
    - reload: true
    - require:
      - pkg: web-package-install-pkg-installed
{%- if vhosts %}
      - cmd: web-service-running-cmd-run-nginx-test
    - watch: {{ vhosts | json }}
{%- endif %}

{%- from "web/map.jinja" import web, apps with context %}
include:
  - web.package.install
  - web.config.vhosts
{%- set vhosts = [] %}
{%- for name, app in apps | dictsort if app.get("port") %}
{%-   do vhosts.append({"file": "web-config-vhosts-file-managed-" ~ name}) %}
{%- endfor %}
{%- if web.nginx.default_site %}
{%-   do vhosts.append({"file": "web-config-vhosts-file-absent-default-site"}) %}
{%- endif %}
{%- if vhosts %}

# nginx -t checks the whole configuration before the reload; when it fails the
# reload does not happen and the running nginx keeps serving what it had.
web-service-nginx-running-cmd-run-config-test:
  cmd.run:
    - name: {{ web.nginx.bin }} -t
    - onchanges: {{ vhosts | json }}
{%- endif %}

web-service-nginx-running-service-running:
  service.running:
    - name: {{ web.nginx.service }}
    - enable: true
    - reload: true
    - require:
      - pkg: web-package-install-pkg-installed
{%- if vhosts %}
      - cmd: web-service-nginx-running-cmd-run-config-test
    - watch: {{ vhosts | json }}
{%- endif %}

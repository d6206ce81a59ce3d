{%- from "web/map.jinja" import web, apps, listen_address with context %}
include:
  - web.package.install
{%- if web.nginx.default_site %}

web-config-vhosts-file-absent-default-site:
  file.absent:
    - name: {{ web.nginx.default_site }}
    - require:
      - pkg: web-package-install-pkg-installed
{%- endif %}
{%- for name, app in apps | dictsort if app.get("port") %}

web-config-vhosts-file-managed-{{ name }}:
  file.managed:
    - name: {{ web.nginx.vhost_dir }}/saltops-{{ name }}.conf
    - source: salt://web/files/vhost.conf.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - context:
        name: {{ name | json }}
        app: {{ app | json }}
        default_server: {{ loop.first | json }}
        listen: {{ (((listen_address ~ ":") if listen_address else "") ~ web.nginx.listen_port) | json }}
        upstream: {{ (web.app.bind_address ~ ":" ~ app.port) | json }}
    - require:
      - pkg: web-package-install-pkg-installed
{%- endfor %}

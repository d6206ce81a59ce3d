{%- from "web/map.jinja" import web with context %}
{%- set pkgs = [web.nginx.pkg] + web.app.pkgs %}
{%- if web.app.supervisor == "supervisor" %}
{%-   do pkgs.append(web.app.supervisor_pkg) %}
{%- endif %}

web-package-install-pkg-installed:
  pkg.installed:
    - pkgs: {{ pkgs | json }}
    # supervisorctl appears with the packages: reload so supervisord.* states load.
    - reload_modules: true

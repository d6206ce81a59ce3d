{%- from "web/map.jinja" import web, apps with context %}
{%- set files = [] %}
{%- for name in apps %}
{%-   do files.append(web.nginx.vhost_dir ~ "/saltops-" ~ name ~ ".conf") %}
{%-   do files.append(web.app.unit_dir ~ "/saltops-app-" ~ name ~ ".service") %}
{%-   do files.append(web.app.supervisor_conf_dir ~ "/saltops-app-" ~ name ~ "." ~ web.app.supervisor_conf_ext) %}
{%-   do files.append(web.app.root ~ "/" ~ name ~ "/releases/bootstrap") %}
{%- endfor %}
# Releases other than the bootstrap one belong to the deploy history and stay.

web-config-clean-file-absent:
  file.absent:
    - names: {{ files | json }}

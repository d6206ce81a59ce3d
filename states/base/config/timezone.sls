{%- from "base/map.jinja" import base with context %}

# The zone is set the way timedatectl sets it, with files, so that it works on
# hosts and containers that do not boot with systemd as well.
base-config-timezone-file-symlink-localtime:
  file.symlink:
    - name: /etc/localtime
    - target: {{ base.zoneinfo_dir }}/{{ base.timezone }}
    - force: true
{%- if base.timezone_file %}

base-config-timezone-file-managed-timezone:
  file.managed:
    - name: {{ base.timezone_file }}
    - contents: {{ base.timezone | json }}
    - user: root
    - group: root
    - mode: "0644"
{%- endif %}

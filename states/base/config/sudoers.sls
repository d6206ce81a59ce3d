{%- from "base/map.jinja" import base with context %}
{%- set sudoers = [] %}
{%- for name, user in base.users | dictsort %}
{%-   if user.get("sudo", False) and not user.get("absent", False) %}
{%-     do sudoers.append(name) %}
{%-   endif %}
{%- endfor %}
include:
  - base.package.install

# visudo checks the candidate before it replaces the file: a broken sudoers is never installed.
base-config-sudoers-file-managed:
  file.managed:
    - name: {{ base.sudoers_file }}
    - source: salt://base/files/sudoers.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0440"
    - check_cmd: {{ base.visudo }} -c -f
    - context:
        users: {{ sudoers | json }}
    - require:
      - sls: base.package.install

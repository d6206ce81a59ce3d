{%- from "base/map.jinja" import base with context %}
{%- for name, user in base.users | dictsort %}
{%-   if user.get("absent", False) %}

base-config-users-user-absent-{{ name }}:
  user.absent:
    - name: {{ name }}
    - purge: false
{%-   else %}

base-config-users-user-present-{{ name }}:
  user.present:
    - name: {{ name }}
    - fullname: {{ user.get("fullname", name) | json }}
    - shell: {{ user.get("shell", "/bin/bash") }}
    - createhome: true
{%-     if user.get("uid") %}
    - uid: {{ user.uid }}
{%-     endif %}
    - groups: {{ user.get("groups", []) | json }}
    - remove_groups: false

base-config-users-ssh-auth-manage-{{ name }}:
  ssh_auth.manage:
    - user: {{ name }}
    - ssh_keys: {{ user.get("ssh_keys", []) | json }}
    - require:
      - user: base-config-users-user-present-{{ name }}
{%-   endif %}
{%- endfor %}

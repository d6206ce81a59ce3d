{%- from "base/map.jinja" import base with context %}

{%- for name in base.users | sort %}

base-config-clean-user-absent-{{ name }}:
  user.absent:
    - name: {{ name }}
{%- endfor %}

base-config-clean-file-absent:
  file.absent:
    - names:
      - {{ base.sudoers_file }}
      - {{ base.sysctl_file }}
      - {{ base.limits_file }}
      - {{ base.minion.config_file }}

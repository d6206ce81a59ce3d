{%- from "base/map.jinja" import base with context %}
{%- for key, value in base.sysctl | dictsort %}

base-config-sysctl-sysctl-present-{{ key }}:
  sysctl.present:
    - name: {{ key }}
    - value: {{ value | json }}
    - config: {{ base.sysctl_file }}
{%- endfor %}

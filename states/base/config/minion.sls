{%- from "base/map.jinja" import base with context %}

base-config-minion-file-serialize:
  file.serialize:
    - name: {{ base.minion.config_file }}
    - serializer: yaml
    - makedirs: true
    - user: root
    - group: root
    - mode: "0644"
    - dataset: {{ base.minion.settings | json }}

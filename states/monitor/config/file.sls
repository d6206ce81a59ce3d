{%- from "monitor/map.jinja" import monitor, listen with context %}
include:
  - monitor.package.install

monitor-config-file-file-managed:
  file.managed:
    - name: {{ monitor.node_exporter.args_file }}
    - source: salt://monitor/files/node_exporter.args.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - context:
        var: {{ monitor.node_exporter.args_var | json }}
        listen: {{ listen | json }}
        collectors: {{ monitor.node_exporter.collectors | json }}
    - require:
      - pkg: monitor-package-install-pkg-installed

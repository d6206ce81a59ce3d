{%- from "cache/map.jinja" import cache, bind, requirepass with context %}
include:
  - cache.package.install

cache-config-file-file-managed:
  file.managed:
    - name: {{ cache.config_file }}
    - source: salt://cache/files/redis.conf.jinja
    - template: jinja
    - user: {{ cache.user }}
    - group: {{ cache.group }}
    - mode: "0640"
    - show_changes: false
    - context:
        cache: {{ cache | json }}
        bind: {{ bind | json }}
        requirepass: {{ requirepass | json }}
    - require:
      - pkg: cache-package-install-pkg-installed

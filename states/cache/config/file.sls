{%- from "cache/map.jinja" import cache, bind, requirepass, requirepass_ref with context %}
include:
  - cache.package.install
{%- if requirepass is none %}

# The password reference did not resolve on this minion: writing the file without
# it would open Redis to anyone who reaches it, so the file is left as it is.
cache-config-file-test-fail-without-changes:
  test.fail_without_changes:
    - name: {{ cache.config_file }}
    - comment: >-
        cache:requirepass is {{ requirepass_ref }}, which resolved to nothing on this minion:
        {{ cache.config_file }} was left unchanged (is the sdb profile in the minion config,
        and does it hold that key?)
{%- else %}

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
{%- endif %}

{#- saltops/cmdb/changed -> push each app's config set to the hosts the change gave that app.

    Only the integer `version` is taken from the event: confpush.on_cmdb_change
    reads from the audit log which hosts gained which app, so a forged event
    cannot choose targets or files.  Events relayed from a minion
    (`cmd: _minion_event`) and anything without a positive integer version
    render to nothing. -#}
{%- set version = data.get('version') if data is mapping else none %}
{%- if data is mapping and data.get('cmd') != '_minion_event'
      and version is integer and version is not boolean and version > 0 %}
saltops-cmdb-changed-confpush-push:
  runner.confpush.on_cmdb_change:
    - args:
      - version: {{ version }}
{%- endif %}

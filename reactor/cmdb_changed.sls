{#- saltops/cmdb/changed -> refresh the pillar of the minions the change touched.

    Only the integer `version` is taken from the event: the cmdb.refresh runner
    reads the touched hosts and the balancers whose backends changed from the
    audit log, so a forged event cannot choose targets.  Events relayed from a
    minion (`cmd: _minion_event`) and anything without a positive integer
    version render to nothing. -#}
{%- set version = data.get('version') if data is mapping else none %}
{%- if data is mapping and data.get('cmd') != '_minion_event'
      and version is integer and version is not boolean and version > 0 %}
saltops-cmdb-changed-refresh-runner:
  runner.cmdb.refresh:
    - args:
      - version: {{ version }}
{%- endif %}

{#- saltops/cmdb/changed -> refresh the pillar of the minions the change touched.

    The event is a hint: a minion can fire this tag with any data (the batched
    `event.send ... preload='{"events": [...]}'` form carries no `cmd` key).
    Only the integer `version` is taken from it, and `once` makes the runner
    act only when a CMDB write queued a refresh for that version and nobody has
    claimed it yet: the touched hosts and balancers come from the audit log, a
    replayed or made-up version does nothing.  Events relayed the single way
    (`cmd: _minion_event`) and anything without a positive integer version
    render to nothing. -#}
{%- set version = data.get('version') if data is mapping else none %}
{%- if data is mapping and data.get('cmd') != '_minion_event'
      and version is integer and version is not boolean and version > 0 %}
saltops-cmdb-changed-refresh:
  runner.cmdb.refresh:
    - args:
      - version: {{ version }}
      - once: true
{%- endif %}

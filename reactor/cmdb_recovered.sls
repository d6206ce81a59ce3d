{#- saltops/cmdb/recovered -> refresh every minion's pillar, once per real recovery.

    While the CMDB database was down, minions got stale data or, on a master
    that had never read it, a failing pillar; with `pillar_cache` the master
    keeps serving those until a refresh with `clean_cache`.  The event is a
    hint (a minion can fire this tag too): the runner refreshes only when this
    master's outage record says an outage ended and nobody handled it yet.
    Nothing is taken from the event. -#}
{%- if data is mapping and data.get('cmd') != '_minion_event' %}
saltops-cmdb-recovered-refresh:
  runner.cmdb.refresh_after_outage: []
{%- endif %}

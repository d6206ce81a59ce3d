{#- saltops/cmdb/recovered -> refresh every minion's pillar.

    While the CMDB database was down, minions got stale data or, on a master
    that had never read it, a failing pillar; with `pillar_cache` the master
    keeps serving those until a refresh with `clean_cache`.  Nothing is taken
    from the event; events relayed from a minion are ignored. -#}
{%- if data is mapping and data.get('cmd') != '_minion_event' %}
saltops-cmdb-recovered-refresh-pillar:
  local.saltutil.refresh_pillar:
    - tgt: '*'
    - kwarg:
        clean_cache: true
{%- endif %}

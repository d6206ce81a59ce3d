{#- saltops/alarm/<fingerprint>/firing -> alarm.remediate
    Map it in the master config:
      reactor:
        - 'saltops/alarm/*/firing':
          - /srv/saltops/reactor/alarm_remediate.sls
    The event is a hint, never an authority: any minion can put this tag on the master bus
    (a batched event.send), so only the fingerprint is taken from the tag, and alarm.remediate
    decides from the database: the alarm must be firing and raised by the pipeline (not an
    Alertmanager alert), its rule must have `remediate:`, and the action runs once per firing
    episode and not again within the rule's cooldown.  A forged or repeated event runs nothing.
-#}
{%- set parts = tag.split('/') %}
{%- if parts | length == 4 and parts[3] == 'firing' and parts[2] | length == 16 %}
saltops-alarm-firing-remediate-{{ parts[2] }}:
  runner.alarm.remediate:
    - args:
      - fingerprint: {{ parts[2] | yaml_dquote }}
{%- endif %}

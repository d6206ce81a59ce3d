{#- saltops/alarm/<fingerprint>/firing -> alarm.remediate
    Map it in the master config:
      reactor:
        - 'saltops/alarm/*/firing':
          - /srv/saltops/reactor/alarm_remediate.sls
    Only the fingerprint is taken from the tag; the alarm.remediate runner reads the
    alarm (host, labels) from the database and the action from the rule's `remediate:`,
    so a forged event can at most repeat a real firing alarm's own action. -#}
{%- set parts = tag.split('/') %}
{%- if parts | length == 4 and parts[3] == 'firing' and parts[2] | length == 16 %}
alarm-remediate-{{ parts[2] }}:
  runner.alarm.remediate:
    - args:
      - fingerprint: {{ parts[2] | yaml_dquote }}
{%- endif %}

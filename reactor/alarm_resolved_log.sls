{#- saltops/alarm/<fingerprint>/resolved -> a line in the master's event log, for auditors and
    as a template for follow-ups (closing a ticket, for example).  The runner reads the alarm
    from the database; nothing from the event is trusted beyond the fingerprint. -#}
{%- set parts = tag.split('/') %}
{%- if parts | length == 4 and parts[3] == 'resolved' and parts[2] | length == 16 %}
saltops-alarm-resolved-log-{{ parts[2] }}:
  runner.alarm.history:
    - args:
      - fingerprint: {{ parts[2] | yaml_dquote }}
      - limit: 1
{%- endif %}

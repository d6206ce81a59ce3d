{#- Say in the state run why a host gets less than its roles, or what it should know. #}
{%- set cmdb = salt["pillar.get"]("cmdb", {}) %}
{%- set messages = [] %}
{%- if not cmdb %}
{%-   do messages.append("no CMDB pillar for this minion (is the saltops_cmdb ext_pillar loaded?): only the safe base was applied") %}
{%- elif not cmdb.get("known", False) %}
{%-   do messages.append("the CMDB does not know this minion (" ~ cmdb.get("reason", "no reason given") ~ "): only the safe base was applied") %}
{%- elif cmdb.get("status") == "decommissioned" %}
{%-   set roles = cmdb.get("roles", []) | join(", ") %}
{%-   do messages.append("this host is decommissioned in the CMDB: only the safe base was applied, roles " ~ roles ~ " were not") %}
{%- elif cmdb.get("status") == "maintenance" %}
{%-   do messages.append("this host is in maintenance in the CMDB: its roles were applied, load balancers leave it out") %}
{%- endif %}
{%- if cmdb.get("stale", False) %}
{%-   do messages.append("the CMDB was unreachable: this run used the last known good data from " ~ cmdb.get("stale_since", "an earlier read")) %}
{%- endif %}
{%- for message in messages %}

notice-test-show-notification-{{ loop.index }}:
  test.show_notification:
    - text: {{ message | json }}
{%- endfor %}
{%- if not messages %}

notice-test-show-notification-none:
  test.show_notification:
    - text: "the CMDB vouches for this host: nothing to report"
{%- endif %}

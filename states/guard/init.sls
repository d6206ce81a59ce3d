{#- guard: no highstate without the CMDB pillar.

    Salt skips an ext_pillar whose module cannot load (not installed, an
    ImportError, the `ext_pillar` line missing from the master config) with only
    a line in the master log, and states would then run as if the CMDB said
    nothing.  states/top.sls gives this SLS, and nothing else, to a minion whose
    pillar has no `cmdb:known` (every record of the saltops_cmdb ext_pillar has
    it, the "unknown minion" marker too), so such a run fails and says why
    instead of quietly applying the safe base. -#}
{%- if salt["pillar.get"]("cmdb:known", None) is none %}

guard-cmdb-pillar-missing-test-fail-without-changes:
  test.fail_without_changes:
    - name: cmdb pillar
    - comment: >-
        the CMDB pillar is missing (no cmdb:known key): the saltops_cmdb ext_pillar did not
        run for this minion, so nothing was applied.  Check the master's ext_pillar list
        (saltops config master), that SaltOps is installed in the master's Python
        (salt-run sys.doc cmdb), and the master log for "saltops_cmdb"; then
        `salt <minion> saltutil.refresh_pillar` and `salt <minion> pillar.item cmdb`
    - failhard: true
{%- else %}

guard-cmdb-pillar-present-test-succeed-without-changes:
  test.succeed_without_changes:
    - name: cmdb pillar
    - comment: the CMDB pillar is present
{%- endif %}

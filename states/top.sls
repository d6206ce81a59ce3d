# The CMDB decides what a host gets; there are no per-host entries here.
#   cmdb:known / cmdb:status  whether the host gets its roles at all
#   cmdb:roles                which role formulas it gets
# A minion the CMDB does not know (`cmdb:known` false) or a decommissioned one gets
# only the safe base, and `notice` says why in the run.
# A host in maintenance keeps its roles; the CMDB pillar leaves it out of balancers.
# No CMDB pillar at all (no `cmdb:known`: the saltops_cmdb ext_pillar was skipped or
# is not configured) gets `guard` alone, which fails the run and says what to check.
base:
  'not I@cmdb:known:*':
    - match: compound
    - guard
  'I@cmdb:known:true and not I@cmdb:status:decommissioned':
    - match: compound
    - base
  'I@cmdb:known:true and not I@cmdb:status:decommissioned and I@cmdb:roles:web':
    - match: compound
    - web
  'I@cmdb:known:true and not I@cmdb:status:decommissioned and I@cmdb:roles:lb':
    - match: compound
    - lb
  'I@cmdb:known:true and not I@cmdb:status:decommissioned and I@cmdb:roles:db':
    - match: compound
    - db
  'I@cmdb:known:true and not I@cmdb:status:decommissioned and I@cmdb:roles:cache':
    - match: compound
    - cache
  'I@cmdb:known:true and not I@cmdb:status:decommissioned and I@cmdb:roles:monitor':
    - match: compound
    - monitor
  'I@cmdb:known:* and ( not I@cmdb:known:true or I@cmdb:status:decommissioned )':
    - match: compound
    - base.safe
    - notice
  'I@cmdb:known:true and I@cmdb:status:maintenance or I@cmdb:stale:true':
    - match: compound
    - notice

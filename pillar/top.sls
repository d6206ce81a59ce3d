# The static pillar tree: settings every host gets.  What depends on a host's CMDB
# record (its roles, its env) is layered by PillarStack from stack/stack.cfg, which
# the master runs as an ext_pillar after saltops_cmdb (see docs/roles.md).
base:
  '*':
    - saltops

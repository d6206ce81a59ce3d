# The safe base: what a host gets when the CMDB does not vouch for it (unknown
# minion id, decommissioned, or no CMDB pillar at all).  Nothing that grants
# access (users, keys, sudoers) and no kernel tuning: only packages, clock and
# the minion's own settings.
include:
  - .package
  - .config.timezone
  - .config.timesync
  - .config.minion
  - .service

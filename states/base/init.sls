# base: what every host the CMDB knows gets (packages, users and SSH keys, sudoers,
# sysctl, limits, timezone, time sync, the minion's own settings).
include:
  - .package
  - .config
  - .service

include:
  - .users
  - .sudoers
  - .sysctl
  - .limits
  - .timezone
  - .timesync
  - .minion

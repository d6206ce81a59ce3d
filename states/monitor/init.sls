# monitor: the node exporter on the host's CMDB address.  Beacons (load, memory,
# disk, the services of the host's roles) come from pillar `beacons:`.
include:
  - .package
  - .config
  - .service

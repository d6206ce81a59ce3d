# cache: a Redis server bound to the host's CMDB address.
include:
  - .package
  - .config
  - .service

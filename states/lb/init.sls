# lb: haproxy with its backends from the CMDB (pillar `cmdb_lb`), one frontend per
# ISP line of the host; the configuration is checked by haproxy before it is installed.
include:
  - .package
  - .config
  - .service

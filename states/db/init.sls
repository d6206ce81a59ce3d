# db: a MariaDB server; primary or replica (read-only) from the host's CMDB record.
include:
  - .package
  - .config
  - .service

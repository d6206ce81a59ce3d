# web: nginx in front of a gunicorn runtime per app; vhosts from the host's CMDB `apps`.
include:
  - .package
  - .config
  - .service

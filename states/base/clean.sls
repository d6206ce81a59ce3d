# Undo the base role, in the reverse order of init.sls.
include:
  - .service.clean
  - .config.clean
  - .package.clean

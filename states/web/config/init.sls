include:
  - .apps
  - .vhosts

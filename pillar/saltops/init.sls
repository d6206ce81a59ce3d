# Site-wide settings for the role formulas, merged over each formula's
# parameters/defaults.yaml by its map.jinja.  Secrets are never written here:
# a key that holds a secret takes a reference (an sdb:// URI resolved on the
# minion, see docs/roles.md), e.g.
#   cache:
#     requirepass: sdb://saltops_secrets/redis_password
base:
  # Admin accounts: name -> {fullname, uid, shell, groups, sudo, ssh_keys, absent}.
  # Public keys only; an empty map manages no account.
  users: {}

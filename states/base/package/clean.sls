{%- from "base/map.jinja" import base with context %}
# Only the time daemon is removed: the base packages (sudo, curl...) are shared
# with everything else on the host.
include:
  - base.service.clean

base-package-clean-pkg-removed-time-sync:
  pkg.removed:
    - name: {{ base.time_sync.pkg }}
    - require:
      - sls: base.service.clean

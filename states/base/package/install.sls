{%- from "base/map.jinja" import base with context %}

base-package-install-pkg-installed:
  pkg.installed:
    - pkgs: {{ base.pkgs | json }}
{%- if base.time_sync.enabled %}

base-package-install-pkg-installed-time-sync:
  pkg.installed:
    - name: {{ base.time_sync.pkg }}
{%- endif %}

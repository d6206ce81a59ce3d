{%- from "lb/map.jinja" import lb with context %}

lb-package-install-pkg-installed:
  pkg.installed:
    - name: {{ lb.haproxy.pkg }}

{%- from "web/map.jinja" import web, apps, cmdb with context %}
include:
  - web.package.install

web-config-apps-group-present:
  group.present:
    - name: {{ web.app.group }}
    - system: true

web-config-apps-user-present:
  user.present:
    - name: {{ web.app.user }}
    - gid: {{ web.app.group }}
    - system: true
    - home: {{ web.app.root }}
    - createhome: false
    - shell: {{ web.app.nologin }}
    - require:
      - group: web-config-apps-group-present

web-config-apps-file-directory:
  file.directory:
    - names:
      - {{ web.app.root }}
      - {{ web.app.log_dir }}
    - user: root
    - group: root
    - mode: "0755"
{%- for name, app in apps | dictsort %}
{%-   if not app.get("port") %}

web-config-apps-test-fail-{{ name }}:
  test.fail_without_changes:
    - name: saltops-app-{{ name }}
    - comment: "app {{ name }} has no `port` in the CMDB record of {{ cmdb.get('hostname', grains.id) }}: set apps:{{ name }}:port"
{%-   else %}
{%-     set app_dir = web.app.root ~ "/" ~ name %}

web-config-apps-file-directory-{{ name }}:
  file.directory:
    - names:
      - {{ app_dir }}
      - {{ app_dir }}/releases
    - user: root
    - group: root
    - mode: "0755"
    - require:
      - file: web-config-apps-file-directory

# A first release that answers every path (the health URL included) with who
# served it, so a new host is reachable before the first deploy; the deploy
# switches `current` to a real release and this state never moves it back.
web-config-apps-file-managed-bootstrap-{{ name }}:
  file.managed:
    - name: {{ app_dir }}/releases/bootstrap/app.py
    - source: salt://web/files/bootstrap_app.py.jinja
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - mode: "0644"
    - context:
        app: {{ name | json }}
        host: {{ cmdb.get("hostname", grains.id) | json }}
    - require:
      - file: web-config-apps-file-directory-{{ name }}

web-config-apps-file-symlink-current-{{ name }}:
  file.symlink:
    - name: {{ app_dir }}/current
    - target: {{ app_dir }}/releases/bootstrap
    - unless: test -e {{ app_dir }}/current
    - require:
      - file: web-config-apps-file-managed-bootstrap-{{ name }}
{%-   endif %}
{%- endfor %}

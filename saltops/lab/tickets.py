"""The lab's people and its deploy ticket template, so that a person can walk a deploy ticket.

The lab's salt-api users are the people (``saltops.lab.users``): ``dev``
applies, ``lead`` (dev's manager) approves first, then anyone with the role
``ops``; the action is ``deploy.run`` with the form's app, version, env,
artifact and checksum.  docs/lab.md has the tour; the deploy ticket
integration test (tests/integration/tickets/test_ticket_deploy.py) walks the
same template on real daemons.
"""

ORG = """\
departments:
  ops: {head: ops}
  dev: {head: lead}
users:
  ops: {department: ops, roles: [ops]}
  lead: {department: dev}
  dev: {department: dev, manager: lead}
  deployer: {department: ops}
  viewer: {department: ops}
"""

DEPLOY_TEMPLATE_NAME = "app-deploy"

DEPLOY_TEMPLATE = """\
name: app-deploy
description: Deploy a version of an app to an environment
fields:
  - {name: app, type: str, required: true, regex: '[a-z0-9][a-z0-9_-]*', max: 64}
  - {name: version, type: str, required: true, regex: '[0-9A-Za-z][0-9A-Za-z._+-]*', max: 64}
  - {name: env, type: choice, choices: [dev, test, staging, prod], required: true}
  - {name: artifact, type: str, required: true, regex: '(https?|salt)://\\S+', max: 2048}
  - {name: sha256, type: str, required: true, regex: '[0-9a-fA-F]{64}'}
  - {name: reason, type: str, max: 200}
steps:
  - {name: lead, manager: true}
  - {name: ops, role: ops}
action:
  fun: deploy.run
  kwargs:
    app: "{{ form.app }}"
    version: "{{ form.version }}"
    env: "{{ form.env }}"
    artifact: "{{ form.artifact }}"
    sha256: "{{ form.sha256 }}"
"""

"""People: users, departments (with a head), roles, managers and delegates.

``schema`` (the ``org_*`` tables, Alembic branch ``org``) and ``people``:
``parse``/``load`` (the org YAML file, checked, all or nothing),
``sync_eauth`` (users and ``group%`` entries of the master's ``external_auth``
as roles), ``add_delegate``, and the questions the ticket workflow asks:
``exists``, ``roles_of``, ``has_role``, ``members``, ``role_exists``,
``department_head``, ``manager_of``, ``principals_for``, ``delegates_of``.
Nothing here imports Salt.
"""

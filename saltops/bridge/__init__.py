"""The Salt-facing side of SaltOps: LocalClient calls and the master event bus.

The core packages (``store``, ``cmdb``, ``pillar``, ``deploy``, ``alarms``,
``notify``) never import Salt's client, event or transport modules; they take
callables and executors, and the Salt adapters (runners, engines, the external
pillar) build those from this package.  The import contracts in
``pyproject.toml`` (checked by ``tests/unit/test_architecture.py``) hold it so.
"""

"""The lab: a real local salt-master, three minions and salt-api on loopback.

``saltops lab up | down | status`` (see docs/lab.md).  The configuration is
built by :mod:`saltops.lab.config` from the same master block a production
master includes (:mod:`saltops.saltconf`); the test fixtures reuse it.
"""

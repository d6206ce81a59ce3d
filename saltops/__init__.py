"""SaltOps: the master-side core.

Plain Python with no Salt dunders: the loader modules in ``_runners/``,
``_engines/`` and ``ext_pillar_cmdb.py`` are thin adapters over this package.
"""

__version__ = "0.1.0"

"""Packaging for SaltOps.

``pip install .`` installs the ``saltops`` core package, the ``saltops`` console
command, and a copy of the Salt trees this repository keeps at its top level
(``_runners/``, ``_modules/``, ``_engines/``, ``_pillar/``, ``states/``, ``pillar/``,
``reactor/``, ``salt/``) under ``saltops/_tree/``.  The ``salt.loader`` entry point
(:func:`saltops.loader.loader_dirs`) hands those directories to a stock
salt-master, so nothing is copied by hand and nothing is synced on the master.
"""

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))

# Top-level trees shipped inside the package (see saltops/paths.py).
TREES = ("_runners", "_modules", "_engines", "_pillar", "_output", "states", "pillar", "reactor", "salt")


class BuildWithTrees(build_py):
    """Copy the top-level Salt trees into the built package."""

    def run(self):
        super().run()
        if self.editable_mode:
            # An editable install runs from the checkout: saltops.paths finds the trees there.
            return
        target = os.path.join(self.build_lib, "saltops", "_tree")
        if os.path.isdir(target):
            shutil.rmtree(target)
        for name in TREES:
            src = os.path.join(HERE, name)
            if os.path.isdir(src):
                shutil.copytree(
                    src,
                    os.path.join(target, name),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )
        shutil.copy2(os.path.join(HERE, "ext_pillar_cmdb.py"), target)


setup(
    name="saltops",
    version="0.1.0",
    description="A CMDB-driven control plane for SaltStack: deploys, config pushes, tickets, alarms",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["saltops", "saltops.*"]),
    package_data={"saltops": ["store/migrations/*.py", "store/migrations/versions/*.py"]},
    include_package_data=True,
    install_requires=[
        "salt>=3007,<3009",
        "pyyaml",
        "jinja2",
        "requests",
        "croniter>=2",
        "pymysql",
        "prometheus-client",
        "sqlalchemy>=2.0",
        "alembic>=1.13",
        "msgpack",
        "psutil",
        # The alarm engine's HTTP endpoint (/metrics, the Alertmanager webhook); CherryPy's server.
        "cheroot>=10",
    ],
    extras_require={
        "api": ["cherrypy"],
        # The C MySQL driver: a bare mysql:// db_url takes it where installed (needs
        # the MariaDB/MySQL client headers to build, e.g. Debian's libmariadb-dev).
        "mysql": ["mysqlclient"],
        "test": [
            "pytest",
            "pytest-salt-factories>=1.0.5",
            "pytest-testinfra",
            "aiosmtpd",
            "cherrypy",
            "salt-lint",
            "import-linter",
            # The workflow's stateful tests (tests/unit/tickets).
            "hypothesis",
            # A real supervisord for the supervisor beacon's test.
            "supervisor",
            # The phone approval page in a headless browser (Debian's chromium and chromium-driver).
            "selenium",
            "setuptools>=68",
            "wheel",
        ],
    },
    entry_points={
        "salt.loader": ["saltops = saltops.loader:loader_dirs"],
        "console_scripts": ["saltops = saltops.cli:main"],
    },
    cmdclass={"build_py": BuildWithTrees},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Salt",
        "Topic :: System :: Systems Administration",
    ],
)

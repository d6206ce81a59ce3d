"""saltops.notify stands alone below the alarm pipeline: it never imports saltops.alarms.

The alarm pipeline hands notifications to notify; an import the other way
round would make the two one package again (the settings and tables of
notify used to live in saltops.alarms).  Read from the source, so that an
import inside a function counts too.
"""

import ast
from pathlib import Path

import saltops.notify

NOTIFY = Path(saltops.notify.__file__).resolve().parent


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_notify_never_imports_the_alarm_pipeline():
    modules = sorted(NOTIFY.glob("*.py"))
    assert len(modules) > 5
    offending = [f"{path.name}: {name}" for path in modules for name in _imports(path)
                 if name == "saltops.alarms" or name.startswith("saltops.alarms.")]
    assert offending == []


def test_the_notify_tables_and_settings_belong_to_notify():
    from saltops.alarms import schema as alarm_schema
    from saltops.alarms import settings as alarm_settings
    from saltops.notify import schema, settings

    assert {schema.outbox.name, schema.deliveries.name} == {"notify_outbox", "notify_deliveries"}
    assert not hasattr(alarm_schema, "outbox") and not hasattr(alarm_schema, "deliveries")
    assert "retry" in settings.NOTIFY and not hasattr(alarm_settings, "NOTIFY")

"""Every public runner function of ``_runners/*.py`` keeps the refusal contract.

A call with a missing or an unknown argument is refused the same way by
every runner (``result: false``, the error naming the arguments, exit status
1, the job failed), whichever way Salt hands it the arguments: the salt-api
path (``RunnerClient._reformat_low``, which silently drops keyword arguments
a function does not take) and the ``salt-run`` path (``load_args_and_kwargs``
without ``ignore_invalid``, which refuses them with exit status 0).
Nothing is written: the database is checked before and after.
"""

import ast
import inspect

import pytest
import salt.config
import salt.loader
import salt.minion
import salt.runner
import salt.utils.args
import sqlalchemy as sa

from saltops import runnerkit
from saltops.paths import tree
from tests.support.refusals import assert_refused

UNKNOWN = "no_such_argument"


def _public_functions():
    """``{"<virtual name>.<public name>": [required arguments]}`` for every ``_runners/*.py``, read from the source."""
    out = {}
    for path in sorted(tree("_runners").glob("*.py")):
        module = ast.parse(path.read_text())
        names = {"__virtualname__": path.stem, "__func_alias__": {}}
        for node in module.body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                if node.targets[0].id in names:
                    names[node.targets[0].id] = ast.literal_eval(node.value)
        for node in module.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                alias = names["__func_alias__"].get(node.name, node.name)
                positional = node.args.args
                required = [a.arg for a in positional[: len(positional) - len(node.args.defaults)]]
                required += [a.arg for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is None]
                out[f"{names['__virtualname__']}.{alias}"] = required
    return out


FUNCTIONS = _public_functions()
# Runners whose extra keyword arguments are the fields of a form: an unknown one is
# refused by the form's template (tests/unit/tickets), after the arguments above it.
FORM_FIELDS = {"ticket.create", "ticket.resubmit"}
WITH_REQUIRED = [fun for fun, required in FUNCTIONS.items() if required]


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    (root / "cache" / "proc").mkdir(parents=True)  # RunnerClient tracks its jobs there
    opts = salt.config.master_config(None)
    opts.update({
        "cachedir": str(root / "cache"), "pki_dir": str(root / "pki"), "sock_dir": str(root / "sock"),
        "saltops": {"db_url": f"sqlite:///{root / 'saltops.db'}"},
    })
    client = salt.runner.RunnerClient(opts)
    runnerkit.open_store(opts)  # migrated first: a refused call must leave every table as it was
    return client, sa.create_engine(f"sqlite:///{root / 'saltops.db'}")


def _rows(engine):
    """Rows per table (none before the first migration)."""
    names = sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        return {n: conn.execute(sa.text(f'SELECT COUNT(*) FROM "{n}"')).scalar() for n in names}


def _required(client, fun):
    signature = getattr(client.functions[fun], "argument_signature", None)
    assert signature is not None, f"{fun} is not wrapped by runnerkit.refuses"
    return [
        p.name for p in signature.parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def _call(client, fun, args, kwargs):
    """What ``RunnerClient.low`` does with the arguments and ``__context__`` (without its job events)."""
    client.context.pop("retcode", None)
    ret = client.functions[fun](*args, **kwargs)
    return {"return": ret, "success": client.context.get("retcode", 0) == 0}


def _through_api(client, fun, kwarg):
    low = client._reformat_low({"fun": fun, "kwarg": dict(kwarg)})  # pylint: disable=protected-access
    return _call(client, low["fun"], low["kwarg"]["arg"], low["kwarg"]["kwarg"])


def _through_cli(client, fun, kwarg):
    args, kwargs = salt.minion.load_args_and_kwargs(
        client.functions[fun], salt.utils.args.parse_input([f"{k}={v}" for k, v in kwarg.items()])
    )
    return _call(client, fun, args, kwargs)


def test_every_runner_module_is_walked(master):
    client, engine = master
    assert {f.split(".")[0] for f in FUNCTIONS} == {"alarm", "cmdb", "confpush", "deploy", "org", "task", "ticket"}
    assert all(f in client.functions for f in FUNCTIONS), set(FUNCTIONS) - set(client.functions)
    assert len(WITH_REQUIRED) > 20
    assert _rows(engine)  # the tables exist, so "nothing was written" below means something


@pytest.mark.parametrize("path", [_through_api, _through_cli], ids=["salt-api", "salt-run"])
@pytest.mark.parametrize("fun", FUNCTIONS)
def test_unknown_arguments_are_refused(master, fun, path):
    client, engine = master
    given = {name: "x" for name in _required(client, fun)}
    before = _rows(engine)
    done = path(client, fun, {**given, UNKNOWN: "1"})
    assert done["success"] is False, done
    assert_refused(done["return"], "" if fun in FORM_FIELDS else UNKNOWN)
    assert "Passed invalid arguments" not in done["return"]["error"]
    assert _rows(engine) == before


@pytest.mark.parametrize("path", [_through_api, _through_cli], ids=["salt-api", "salt-run"])
@pytest.mark.parametrize("fun", WITH_REQUIRED)
def test_missing_arguments_are_refused_all_at_once(master, fun, path):
    client, engine = master
    required = _required(client, fun)
    assert required == FUNCTIONS[fun]
    before = _rows(engine)
    done = path(client, fun, {})
    assert done["success"] is False, done
    info = assert_refused(done["return"], rf"^{fun}: missing argument\(s\): {', '.join(required)}; nothing was changed")
    assert info["problems"] == [f"{name} is required" for name in required]
    assert _rows(engine) == before


def test_the_signature_salt_sees_lets_unknown_arguments_through(master):
    client, _ = master
    for fun in FUNCTIONS:
        params = inspect.signature(client.functions[fun]).parameters.values()
        assert any(p.kind is p.VAR_KEYWORD for p in params), fun

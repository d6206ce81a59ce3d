"""Bad input to the deploy runner through the real salt-run CLI: a clear message, exit status 1, nothing changed."""

import json

import pytest
import sqlalchemy as sa

from saltops.deploy.schema import runs

pytestmark = [pytest.mark.integration]


def _refusal(ret):
    """The returned refusal (salt-run --out=json prints it as the last document)."""
    data = ret.data if isinstance(ret.data, dict) else json.loads(ret.stdout.strip().splitlines()[-1])
    assert data["result"] is False and data["retcode"] == 1, data
    assert ret.returncode == 1, (ret.returncode, ret.stdout, ret.stderr)
    return data


def _deploys(store):
    with store.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar()


@pytest.mark.parametrize(
    "fun, args, error, problem",
    [
        (
            "deploy.run",
            ["app=shop", "env=dev"],
            "invalid deploy request; nothing was changed",
            "version None is invalid",
        ),
        (
            "deploy.run",
            [
                "app=Shop!",
                "env=nowhere",
                "version=1.0.0",
                "artifact=ftp://example.com/a.tgz",
                "sha256=abc",
            ],
            "invalid deploy request; nothing was changed",
            "artifact 'ftp://example.com/a.tgz' must be an http://, https:// or salt:// URL",
        ),
        (
            "deploy.run",
            ["app=shop", "env=dev", "version=1.10", "artifact=http://x/a.tgz", f"sha256={'a' * 64}"],
            "invalid deploy request; nothing was changed",
            "version was read as the float 1.1, not as text",
        ),
        (
            "deploy.run",
            [
                "app=shop",
                "env=dev",
                "version=v1",
                "artifact=http://x/a.tgz",
                f"sha256={'a' * 64}",
                "batch_size=0",
            ],
            "batch_size must be >= 1, got 0",
            "batch_size must be >= 1, got 0",
        ),
        ("deploy.plan", ["app=shop"], "missing argument(s): env; nothing was changed", "env is required"),
        ("deploy.status", ["abc"], "a deploy id is a number, got 'abc'", "a deploy id is a number"),
        ("deploy.abort", [], "missing argument(s): id; nothing was changed", "id is required"),
        ("deploy.resume", ["999999"], "deploy 999999 does not exist", "deploy 999999 does not exist"),
        ("deploy.history", ["limit=lots"], "limit must be a number, got 'lots'", "limit must be a number"),
        (
            "deploy.rollback",
            ["app=shop", "env=dev", "instant=maybe"],
            "instant must be True or False, got 'maybe'",
            "instant must be True or False",
        ),
        (
            "deploy.rollback",
            ["app=nothing-here", "env=dev"],
            "nothing-here has no successful deploy to dev on record; nothing to roll back to",
            "nothing to roll back to",
        ),
        (
            "deploy.plan",
            ["app=shop", "env=dev", "stratgy=canary"],
            "deploy.plan: unknown argument(s) stratgy",
            "unknown argument 'stratgy'",
        ),
    ],
)
def test_bad_input_exits_non_zero_with_a_clear_message(salt_run, cmdb_store, fun, args, error, problem):
    before = _deploys(cmdb_store)
    data = _refusal(salt_run(fun, *args))
    assert error in data["error"], data
    assert any(problem in p for p in data["problems"]), data
    assert _deploys(cmdb_store) == before


def test_good_input_still_exits_zero(salt_run):
    ret = salt_run("deploy.history", "limit=1")
    assert ret.returncode == 0 and isinstance(ret.data, list), ret

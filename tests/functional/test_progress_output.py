"""Progress events on ``salt-run``: one line per step through the ``saltops_progress`` outputter.

A runner that reports through ``runnerkit.progress_to`` is run by Salt's own
``RunnerClient.low`` with its printing on, as ``salt-run`` runs it.
"""

import json
import textwrap

import pytest
import salt.config
import salt.loader
import salt.runner

RUNNER = '''
from saltops import runnerkit


def steps(count=2):
    progress = runnerkit.progress_to(globals())
    for number in range(1, int(count) + 1):
        progress(f"step {number} of {count}", {"number": number, "hosts": ["web01", "web02"]})
    return {"done": int(count)}
'''


@pytest.fixture
def client(tmp_path):
    runners = tmp_path / "runners"
    runners.mkdir()
    (runners / "progressdemo.py").write_text(textwrap.dedent(RUNNER))
    (tmp_path / "cache" / "proc").mkdir(parents=True)
    opts = salt.config.master_config(None)
    opts.update({
        "cachedir": str(tmp_path / "cache"), "pki_dir": str(tmp_path / "pki"), "sock_dir": str(tmp_path / "sock"),
        "runner_dirs": [str(runners)],
    })
    opts.pop("output", None)  # as salt-run leaves it without --out
    return salt.runner.RunnerClient(opts)


def _printed(capsys):
    return [line for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_each_progress_step_is_one_line(client, capsys):
    ret = client.low("progressdemo.steps", {"arg": [], "kwarg": {"count": 2}}, full_return=True)
    assert ret["return"] == {"done": 2}
    lines = _printed(capsys)
    steps = [line for line in lines if "step" in line]
    assert len(steps) == 2, lines
    for number, line in enumerate(steps, 1):
        clock, message = line.split(" ", 1)
        assert message == f"step {number} of 2"
        assert len(clock) == 8 and clock.count(":") == 2, line


def test_out_json_still_shows_the_whole_event(client, capsys):
    client.opts["output"] = "json"
    client.low("progressdemo.steps", {"arg": [], "kwarg": {"count": 1}})
    text, events, decoder = capsys.readouterr().out, [], json.JSONDecoder()
    at = text.find("{")
    while at != -1:
        value, end = decoder.raw_decode(text, at)
        events.append(value)
        at = text.find("{", end)
    progress = [e["event"] for e in events if isinstance(e, dict) and e.get("suffix") == "progress"]
    assert progress and progress[0]["hosts"] == ["web01", "web02"] and progress[0]["number"] == 1


def test_other_data_falls_back_to_the_nested_view(client):
    outputters = salt.loader.outputters(client.opts)
    assert outputters["saltops_progress"]({"a": {"b": 1}}) == outputters["nested"]({"a": {"b": 1}})

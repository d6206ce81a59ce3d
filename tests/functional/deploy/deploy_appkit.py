"""A tiny HTTP app packaged as release artifacts, and a local HTTP server for them.

Shared by the deploy functional, integration and benchmark tests.  The app
answers ``GET /healthz`` with its version (or 500 when built ``broken``); its
``bin/restart.sh`` stops the instance recorded in a pid file and starts the
release in ``$SALTOPS_RELEASE_DIR`` on ``$SALTOPS_PORT``.
"""

import contextlib
import hashlib
import http.server
import io
import os
import signal
import socket
import sys
import tarfile
import threading
import time
import zipfile

APP_PY = r"""
import http.server, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
version = open(os.path.join(here, "VERSION")).read().strip()
broken = os.path.exists(os.path.join(here, "BROKEN"))

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 500 if (broken and self.path == "/healthz") else 200
        body = ("broken " if broken else "ok ") + version
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

port = int(sys.argv[1])
for _ in range(100):
    try:
        server = http.server.HTTPServer(("127.0.0.1", port), Handler)
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("port %d stays busy" % port)
server.serve_forever()
"""

RESTART_SH = r"""#!/bin/sh
# Stop the instance of this slot, start the release being switched to.
set -e
if [ -f "$SALTOPS_RELEASE_DIR/SLOW" ]; then sleep "$(cat "$SALTOPS_RELEASE_DIR/SLOW")"; fi
slot=${SALTOPS_SLOT:-main}
pidfile="$SALTOPS_APP_DIR/app-$slot.pid"
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  i=0
  # Gone, or a zombie nobody has reaped yet (it no longer holds the port).
  while [ $i -lt 100 ] && [ -e "/proc/$pid" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
    sleep 0.02; i=$((i+1))
  done
fi
cd "$SALTOPS_RELEASE_DIR"
nohup @PYTHON@ app.py "$SALTOPS_PORT" > "$SALTOPS_APP_DIR/app-$slot.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
"""


def build_artifact(directory, version, broken=False, fmt="tar.gz", app="shop", python=None, slow=0):
    """Write ``<app>-<version>.<fmt>`` into ``directory``; return (path, sha256)."""
    files = {
        "app.py": APP_PY,
        "VERSION": version + "\n",
        "bin/restart.sh": RESTART_SH.replace("@PYTHON@", python or sys.executable),
        "bin/hook.sh": '#!/bin/sh\necho "$1 $SALTOPS_VERSION" >> "$SALTOPS_APP_DIR/hooks.log"\n',
    }
    if broken:
        files["BROKEN"] = "1\n"
    if slow:
        # Seconds the restart waits: keeps a deploy in flight for fault injection.
        files["SLOW"] = f"{slow}\n"
    top = f"{app}-{version}"
    suffix = ("-broken" if broken else "") + (f"-slow{slow}" if slow else "")
    path = os.path.join(directory, f"{app}-{version}{suffix}.{fmt}")
    if fmt == "tar.gz":
        with tarfile.open(path, "w:gz") as tar:
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(f"{top}/{name}")
                info.size = len(data)
                info.mode = 0o755 if name.startswith("bin/") else 0o644
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(data))
    elif fmt == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, text in files.items():
                zf.writestr(name, text)
    else:
        raise ValueError(fmt)
    return path, sha256_of(path)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ArtifactServer:
    """Serves a folder over HTTP on loopback; ``/hang/...`` never answers."""

    def __init__(self, directory):
        self.directory = directory
        self.stop_event = threading.Event()
        self.requests = []
        kit = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=kit.directory, **kwargs)

            def do_GET(self):
                kit.requests.append(self.path)
                if self.path.startswith("/hang/"):
                    kit.stop_event.wait(120)
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/{os.path.basename(path) if os.path.isabs(path) else path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()


def stop_apps(base):
    """Kill every app instance started under ``base`` (pid files app-*.pid)."""
    for root, _dirs, files in os.walk(base):
        for name in files:
            if name.startswith("app-") and name.endswith(".pid"):
                with contextlib.suppress(OSError, ValueError), open(os.path.join(root, name)) as fh:
                    os.kill(int(fh.read().strip()), signal.SIGTERM)


def get(url, timeout=3):
    """(status, body) of a GET, or (None, error text)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return None, str(err)


# The hooks the app hosts' static pillar declares (saltops:deploy:hooks); the
# CMDB settings only name them.
HOOKS = {
    "app_restart": {"cmd": ["sh", "bin/restart.sh"]},
    "hook_pre": {"cmd": ["sh", "bin/hook.sh", "pre"]},
    "hook_post": {"cmd": ["sh", "bin/hook.sh", "post"]},
    "failing_migration": {"cmd": ["sh", "-c", "echo migration failed >&2; exit 3"]},
}


def hooks_pillar():
    """The pillar data that declares :data:`HOOKS`."""
    return {"saltops": {"deploy": {"hooks": HOOKS}}}


def write_hooks_pillar(pillar_root, also=()):
    """Write ``deploy_hooks.sls`` and a top file giving every minion ``also`` + it into ``pillar_root``.

    Returns the paths written (for the caller to remove).
    """
    import yaml

    paths = [os.path.join(pillar_root, "deploy_hooks.sls"), os.path.join(pillar_root, "top.sls")]
    with open(paths[0], "w", encoding="utf-8") as fh:
        yaml.safe_dump(hooks_pillar(), fh)
    with open(paths[1], "w", encoding="utf-8") as fh:
        yaml.safe_dump({"base": {"*": [*also, "deploy_hooks"]}}, fh)
    return paths


def app_settings(base, port, **extra):
    """The CMDB ``apps:<app>`` settings the tests give a host."""
    settings = {
        "base": base,
        "port": port,
        "restart": "app_restart",
        "health_url": "/healthz",
        "health_expect": "ok {version}",
        "health_retries": 20,
        "health_interval": 0.1,
        "health_timeout": 2,
        "fetch_timeout": 10,
        "keep": 3,
    }
    settings.update(extra)
    return settings


class CallerExecutor:
    """Runs each host's call through the Caller; hosts in ``down`` do not answer.

    ``lose`` names functions whose calls run but whose returns are lost (as
    with a master restarted while its minions work).
    """

    def __init__(self, caller):
        self.caller = caller
        self.down = set()
        self.lose = set()
        self.calls = []

    def call(self, fun, hostnames, args, settings_by_host, timeout, kwargs=None):
        out = {}
        for name in hostnames:
            self.calls.append((fun, name))
            if name in self.down:
                out[name] = None
                continue
            try:
                out[name] = _normalise(
                    self.caller.cmd(fun, *args, settings=settings_by_host[name], **(kwargs or {}))
                )
            except Exception as err:  # noqa: BLE001 - Salt returns errors as text, like a minion
                out[name] = _normalise(f"ERROR: {err}")
            if fun.rpartition(".")[2] in self.lose:
                out[name] = None
        return out

    def run_plain(self, hostnames, fun, args, timeout):
        return {name: self.caller.cmd(fun, *args) for name in hostnames}


def _normalise(ret):
    from saltops.bridge.local import normalise

    return normalise(ret)

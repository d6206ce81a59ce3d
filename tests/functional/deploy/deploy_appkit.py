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


def app_settings(base, port, **extra):
    """The CMDB ``apps:<app>`` settings the tests give a host."""
    settings = {
        "base": base,
        "port": port,
        "restart": "sh bin/restart.sh",
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

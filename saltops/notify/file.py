"""A file a person can watch: each notification appended as a readable block.

Meant for a lab or a first set-up (``tail -f`` the file), and as a local record
beside the real channels.  One ``write`` per notification on a file opened with
``O_APPEND``, so blocks from several workers never interleave.
"""

import datetime
import os

from saltops.notify import render
from saltops.notify.base import Channel


class FileChannel(Channel):
    kind = "file"
    required = ("path",)

    @classmethod
    def check(cls, name, spec):
        problems = super().check(name, spec)
        path = spec.get("path")
        if path and not (isinstance(path, str) and os.path.isabs(path)):
            problems.append(f"channels.{name}.path: an absolute file path")
        return problems

    @staticmethod
    def block(payload, now=None):
        stamp = (now or datetime.datetime.now(datetime.timezone.utc)).isoformat(timespec="seconds")
        return f"--- {stamp} receiver={payload.get('receiver', '')}\n{render.text(payload)}\n\n"

    def send(self, payload):
        path = self.spec["path"]
        data = self.block(payload).encode("utf-8")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as err:
            raise self.error(f"cannot append to {path}: {err.strerror or err}") from None

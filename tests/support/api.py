"""A small salt-api (rest_cherrypy) client for the tests.

``client.run("viewer", "cmdb.list", role="web")`` logs ``viewer`` in with eauth
``file`` (once; the token is reused) and calls the runner; it returns the
:class:`requests.Response` so that tests can assert on status codes.
``client.run_data(...)`` asserts HTTP 200 and returns the runner's return value.
"""

import requests


class SaltApiClient:
    def __init__(self, url, passwords, eauth="file", timeout=60):
        self.url = url.rstrip("/")
        self.passwords = dict(passwords)
        self.eauth = eauth
        self.timeout = timeout
        self._tokens = {}

    def login(self, username, password=None):
        """POST /login; returns the response (200 with a token, or 401)."""
        if password is None:
            password = self.passwords[username]
        return requests.post(
            f"{self.url}/login",
            json={"username": username, "password": password, "eauth": self.eauth},
            headers={"Accept": "application/json"},
            timeout=self.timeout,
        )

    def token(self, username):
        if username not in self._tokens:
            resp = self.login(username)
            if resp.status_code != 200:
                raise AssertionError(
                    f"login as {username!r} failed: HTTP {resp.status_code} {resp.text[:300]}"
                )
            self._tokens[username] = resp.json()["return"][0]["token"]
        return self._tokens[username]

    def lowstate(self, username, chunks):
        """POST / with a list of lowstate chunks as ``username``."""
        return requests.post(
            self.url + "/",
            json=chunks if isinstance(chunks, list) else [chunks],
            headers={"Accept": "application/json", "X-Auth-Token": self.token(username)},
            timeout=self.timeout,
        )

    def get(self, username, path):
        """GET ``path`` (``/jobs``, ``/jobs/<jid>``, ...) as ``username``, as a web client does."""
        return requests.get(
            self.url + path,
            headers={"Accept": "application/json", "X-Auth-Token": self.token(username)},
            timeout=self.timeout,
        )

    def run(self, username, fun, *args, client="runner", **kwargs):
        """Call one function (a runner by default) with positional and keyword arguments."""
        chunk = {"client": client, "fun": fun}
        if args:
            chunk["arg"] = list(args)
        if kwargs:
            chunk["kwarg"] = kwargs
        return self.lowstate(username, chunk)

    def run_data(self, username, fun, *args, client="runner", **kwargs):
        resp = self.run(username, fun, *args, client=client, **kwargs)
        if resp.status_code != 200:
            raise AssertionError(f"{fun} as {username!r}: HTTP {resp.status_code} {resp.text[:500]}")
        return resp.json()["return"][0]

    def local(self, username, tgt, fun, *args, tgt_type="glob", **kwargs):
        """Call an execution function on minions through the ``local`` client."""
        chunk = {"client": "local", "tgt": tgt, "fun": fun, "tgt_type": tgt_type}
        if args:
            chunk["arg"] = list(args)
        if kwargs:
            chunk["kwarg"] = kwargs
        return self.lowstate(username, chunk)

"""
SaltOps tickets: a Salt engine that serves the phone approval page.

Thin adapter over :class:`saltops.tickets.phone.App`, served with the
project's bounded cheroot server (the alarm engine's: worker pool, socket and
request deadlines, connection cap, body limit) on
``saltops:tickets:web:listen_host``/``listen_port``.  A non-loopback address
is served only with ``behind_tls_proxy: true`` (the page's links carry
bearer tokens).  A decision made on the page runs the ticket's action
through Salt like ``ticket.approve`` does, fires the ticket's events and
tells the next step's approvers.

Enable it in the master config::

    engines:
      - saltops_tickets: {}
    saltops:
      tickets:
        notify: {channels: [mail], base_url: https://saltops.example.com/tickets}

See ``docs/tickets.md``.
"""

import logging
import threading

from saltops import config as saltops_config
from saltops.errors import SaltOpsError

log = logging.getLogger(__name__)

__virtualname__ = "saltops_tickets"


def __virtual__():
    try:
        from saltops.tickets import settings

        settings.load(saltops_config.load(__opts__))  # noqa: F821
    except SaltOpsError as err:
        log.warning("saltops_tickets engine not loaded: invalid configuration: %s", err)
        return False, f"saltops_tickets: invalid configuration: {err}"
    return __virtualname__


def start(**kwargs):
    """Serve the phone page until the master stops the engine."""
    from saltops.alarms.http import is_loopback
    from saltops.alarms.http_server import BoundedServer
    from saltops.bridge import ticketcalls
    from saltops.bridge.bus import MasterBus
    from saltops.store import get_store, outbox
    from saltops.tickets import links, notices, phone, settings
    from saltops.tickets.workflow import Workflow

    opts = __opts__  # noqa: F821
    conf = saltops_config.load(opts)
    ticket_conf = settings.load(conf)
    web = ticket_conf["web"]
    if not is_loopback(web["listen_host"]) and not web["behind_tls_proxy"]:
        log.error("ticket phone page not served on %s: a non-loopback address needs TLS in front of it "
                  "(saltops:tickets:web:behind_tls_proxy: true)", web["listen_host"])
        return
    store = get_store(conf["db_url"], conf["db_options"])
    execute = ticketcalls.executor(opts, store, conf, timeout=ticket_conf["action_timeout"])
    flow = Workflow(store, executor=execute, ops_role=ticket_conf["ops_role"])
    notifier = notices.from_config(store, conf, ticket_conf, opts["cachedir"])
    secret = links.load_secret(notices.secret_path(web, opts["cachedir"]))
    bus = MasterBus(opts)

    def after_write():
        outbox.flush(store, bus, prefix="saltops/ticket/")
        notifier.announce()

    app = phone.App(flow, secret, after_write, max_body=web["max_body"])
    server = BoundedServer((web["listen_host"], web["listen_port"]), app, threads=web["threads"],
                           read_timeout=web["read_timeout"], request_timeout=web["request_timeout"],
                           max_connections=web["max_connections"], max_body=web["max_body"],
                           too_large_message=f"the body is larger than {web['max_body']} bytes",
                           name="saltops-tickets").start()
    log.info("ticket phone page on %s:%s", web["listen_host"], server.port)
    stopping = threading.Event()
    try:
        while not stopping.wait(3600):
            with store.begin() as conn:
                links.prune(conn, flow.clock())
    finally:
        server.stop()
        bus.close()

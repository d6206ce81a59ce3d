"""Read the master event bus in bulk, for the alarm engine.

Salt's synchronous ``get_event()`` runs an asyncio loop to completion for
every single event (``SyncWrapper``): about 0.1 ms of CPU per event before
the event is even looked at, and at 1,000+ events a second that is a third of
the engine's CPU.  :class:`BusReader` instead keeps one asyncio loop running
in its own thread and awaits ``recv()`` on the asynchronous publish client
that ``salt.transport.ipc_publish_client`` returns (the one ``SaltEvent``
itself wraps).  ``recv()`` hands out frames already buffered by the previous
socket read without touching the socket again, so under load one wake-up
reads many events.

Every frame goes to ``sink(tag, data)``; a frame that does not decode goes
to ``on_garbage(error)`` and reading goes on.  A closed connection is
reopened at once and counted in :attr:`BusReader.reconnects`: besides a
restart, Salt's event publisher closes a subscriber whose unsent events
pass ``pub_server_write_queue_size`` (10,000 by default in Salt 3008.4; the
master logs "Publisher discarding slow subscriber"), and the events in
between are lost for that subscriber.  Reading in bulk, off the loop's
thread, is what keeps the engine far from that limit.
"""

import asyncio
import logging
import threading

from saltops.store import outbox

log = logging.getLogger(__name__)


class BusReader:
    """Pump the master event bus of ``opts`` into ``sink`` until ``stopping`` is set."""

    def __init__(self, opts, sink, on_garbage, stopping, poll=0.5, retry=0.5):
        self.opts = opts
        self.sink = sink
        self.on_garbage = on_garbage
        self.stopping = stopping
        self.poll = poll  # how often the loop looks at ``stopping`` while the bus is quiet
        self.retry = retry
        self.connected = threading.Event()
        self.thread = None
        self.reconnects = 0  # subscriptions lost after the first connect (events may have been dropped)

    def start(self):
        self.thread = threading.Thread(target=self._thread, name="saltops-alarms-reader", daemon=True)
        self.thread.start()
        return self

    def _thread(self):
        try:
            asyncio.run(self._pump())
        except Exception:  # the engine keeps its loop; the master log says why reading stopped
            log.exception("alarm engine: event bus reader stopped")

    async def _connect(self):
        import salt.transport

        while not self.stopping.is_set():
            client = salt.transport.ipc_publish_client("master", self.opts, io_loop=asyncio.get_running_loop())
            try:
                await client.connect(timeout=5, disconnect_callback=self._disconnected)
                return client
            except Exception as err:  # the publisher is not there yet (master starting)
                log.warning("alarm engine: cannot subscribe to the event bus yet: %s", err)
                client.close()
                await asyncio.sleep(self.retry)
        return None

    async def _disconnected(self):
        # Called by the publish client when the stream closes; it reconnects by itself on the next recv().
        self.reconnects += 1
        log.warning("alarm engine: the master event bus closed our subscription (a master restart, or the "
                    "publisher dropping a slow subscriber): events in between are lost; subscribing again")

    async def _pump(self):
        from salt.utils.event import SaltEvent

        unpack = SaltEvent.unpack
        sink = self.sink
        client = await self._connect()
        try:
            while client is not None and not self.stopping.is_set():
                self.connected.set()
                try:
                    raw = await client.recv(timeout=self.poll)
                except Exception as err:  # a broken stream: subscribe again
                    log.warning("alarm engine: event bus read failed, subscribing again: %s", err)
                    client.close()
                    await asyncio.sleep(self.retry)
                    client = await self._connect()
                    continue
                if raw is None:
                    continue
                try:
                    tag, data = unpack(raw)
                except Exception as err:
                    self.on_garbage(err)
                    continue
                sink(tag, data)
        finally:
            if client is not None:
                client.close()

    def join(self, timeout=None):
        if self.thread is not None:
            self.thread.join(timeout)


class BusUnavailable(Exception):
    """The master event bus did not take an event (the publisher is down or not there yet)."""


class MasterBus:
    """Fire events on the master bus of ``opts``: ``bus(tag, data)``.

    The one place that knows Salt's argument order (``SaltEvent.fire_event(data,
    tag)``, the reverse of every SaltOps caller's ``(tag, data)``), that Salt
    stamps the dict it is given (so it gets a copy), and that a refused event
    comes back as ``False`` rather than an exception: that is raised here as
    :class:`BusUnavailable`, so a caller cannot mistake it for a sent event.
    """

    def __init__(self, opts):
        self.opts = opts
        self._event = None

    def _bus(self):
        if self._event is None:
            import salt.utils.event

            self._event = salt.utils.event.get_master_event(self.opts, self.opts["sock_dir"], listen=False)
        return self._event

    def __call__(self, tag, data):
        if not isinstance(tag, str):
            raise TypeError(f"an event tag is a string (fire(tag, data)), not {type(tag).__name__}")
        if not tag:
            raise ValueError("an event tag cannot be empty")
        if not isinstance(data, dict):
            raise TypeError(f"event data is a mapping, not {type(data).__name__}")
        try:
            sent = self._bus().fire_event(dict(data), tag)
        except Exception as err:  # a broken connection: open a fresh one next time
            self.close()
            raise BusUnavailable(f"the master event bus refused {tag}: {err}") from err
        if sent is False:
            self.close()
            raise BusUnavailable(f"the master event bus is not reachable (firing {tag})")
        return True

    def close(self):
        if self._event is not None:
            try:
                self._event.destroy()
            finally:
                self._event = None


def announce_outbox(opts, store, what, prefix=None):
    """Fire the committed events waiting in ``store``'s outbox (those under ``prefix``) on the master bus.

    For runners: their writes are committed already, so a bus that does not take
    the events is a warning, not a failure; the events stay in the outbox for
    the next flush (any runner's, or the engines').  Returns how many are still
    waiting, or ``None`` when the bus could not be reached.
    """
    bus = MasterBus(opts)
    try:
        outbox.flush(store, bus, prefix=prefix)
        return outbox.pending_count(store)
    except Exception as err:  # noqa: BLE001  # pylint: disable=broad-except
        log.warning("%s stay in the outbox until the next flush: %s", what, err)
        return None
    finally:
        bus.close()

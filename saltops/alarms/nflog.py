"""The notification log: what each (group, receiver) was last told, and when.

It decides whether a group flush sends anything (Alertmanager's dedup stage),
and it is written in the same transaction as the notification it records, so
a restart neither forgets a sent notification nor sends it twice.
"""


class Entry:
    __slots__ = ("firing", "group_key", "resolved", "ts")

    def __init__(self, group_key, firing, resolved, ts):
        self.group_key = group_key
        self.firing = frozenset(firing)
        self.resolved = frozenset(resolved)
        self.ts = ts


class Decision:
    """What a flush sends: ``send`` (bool), ``firing``/``resolved`` fingerprints to report."""

    __slots__ = ("firing", "known", "repeat", "resolved", "send")

    def __init__(self, send, firing, resolved, known, repeat=False):
        self.send = send
        self.firing = firing
        self.resolved = resolved
        self.known = known
        self.repeat = repeat


class NotificationLog:
    def __init__(self):
        self.entries = {}  # (group_id, receiver) -> Entry
        self.dirty = {}

    def get(self, group_id, receiver):
        return self.entries.get((group_id, receiver))

    def set(self, group_id, receiver, group_key, firing, resolved, ts):
        entry = Entry(group_key, firing, resolved, ts)
        self.entries[(group_id, receiver)] = entry
        self.dirty[(group_id, receiver)] = entry

    def take_dirty(self):
        dirty, self.dirty = self.dirty, {}
        return dirty

    def decide(self, group_id, receiver, visible_firing, muted_firing, resolved, repeat_interval,
               send_resolved, now):
        """Alertmanager's ``needsUpdate``, with muted alerts kept as *known*.

        ``visible_firing``: firing and not muted; ``muted_firing``: firing but
        silenced/inhibited/acked; ``resolved``: resolved since the last flush.
        A muted alert the receiver was told about stays known, so its later
        resolution is reported, but it never triggers a repeat by itself.
        """
        entry = self.entries.get((group_id, receiver))
        known_before = entry.firing if entry else frozenset()
        visible = frozenset(visible_firing)
        resolved_known = frozenset(fp for fp in resolved if fp in known_before)
        known_after = visible | (known_before & frozenset(muted_firing))
        if visible - known_before:
            return Decision(True, visible, resolved_known if send_resolved else frozenset(), known_after)
        if resolved_known:
            return Decision(send_resolved, visible, resolved_known if send_resolved else frozenset(),
                            known_after)
        if visible and entry is not None and now - entry.ts >= repeat_interval:
            return Decision(True, visible, frozenset(), known_after, repeat=True)
        return Decision(False, visible, frozenset(), known_after)

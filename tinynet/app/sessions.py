"""Each visitor's own copy of the model: "take a step" and "reset" change nobody else's.

A visitor is a random token in a cookie (``HttpOnly``: the page's script cannot read it;
``SameSite=Strict``: another site cannot make the browser send it). A visitor who has not
taken a step needs no copy of their own: they are answered by one of the idle copies of the
loaded model, lent for the request. The first step gives the visitor a copy; at most
``max_visitors`` copies are kept, the least recently used one forgotten first (that visitor
is back to the loaded weights). A layer keeps what its forward saved for its backward, so
one copy answers one request at a time (its lock).
"""

import copy
import re
import secrets
import threading
from collections import OrderedDict
from contextlib import contextmanager

__all__ = ["Sessions", "COOKIE_NAME", "MAX_VISITORS"]

#: The cookie that names a visitor.
COOKIE_NAME = "tinynet_visitor"
#: The most visitors' copies kept (a CNN in float64 is about 2 MB).
MAX_VISITORS = 64
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")


class _Copy:
    """One visitor's model, the steps taken on it and the lock around it."""

    def __init__(self, model):
        self.model = model
        self.steps = 0
        self.lock = threading.Lock()


class Sessions:
    """The loaded model, the visitors' copies (least recently used first) and the idle copies of the loaded model."""

    def __init__(self, model, max_visitors=MAX_VISITORS):
        self.loaded = model
        self.max_visitors = max_visitors
        self._copies = OrderedDict()  # token -> _Copy
        self._idle = []  # copies of the loaded model, each lent to one request at a time
        self._lock = threading.Lock()

    @staticmethod
    def visitor(cookie_header):
        """The visitor's token from a ``Cookie`` header, or a new one: ``(token, is_new)``."""
        for part in (cookie_header or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE_NAME and _TOKEN.fullmatch(value):
                return value, False
        return secrets.token_urlsafe(16), True

    @staticmethod
    def cookie(token):
        """The ``Set-Cookie`` value that gives a new visitor their token."""
        return f"{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/"

    @contextmanager
    def model(self, token, create=False):
        """The visitor's model and its step count, for the ``with`` block only.

        With ``create`` (a step is about to be taken) a visitor without a copy gets one.
        """
        with self._lock:
            own = self._copies.get(token)
            if own is None and create:
                own = self._copies[token] = _Copy(self._lend())
                while len(self._copies) > self.max_visitors:
                    self._copies.popitem(last=False)
            if own is not None:
                self._copies.move_to_end(token)
        if own is not None:
            with own.lock:
                yield own
            return
        lent = _Copy(self._lend_or_copy())
        try:
            yield lent
        finally:
            with self._lock:
                self._idle.append(lent.model)

    def forget(self, token):
        """Reset: the visitor is back to the loaded weights."""
        with self._lock:
            self._copies.pop(token, None)

    def visitors(self):
        """How many visitors have a copy of their own."""
        with self._lock:
            return len(self._copies)

    def _lend(self):
        return self._idle.pop() if self._idle else copy.deepcopy(self.loaded)

    def _lend_or_copy(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return copy.deepcopy(self.loaded)  # outside the lock: copying takes a few milliseconds

"""Keep credentials out of logs, messages and API answers.

Connection URLs may carry a user and password (``redis://:pw@host``, ``http://u:pw@host``),
and error messages of client libraries often quote the URL they failed on. Anything that
is logged or shown goes through :func:`scrub` (text) or :func:`redact_url` (a URL).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK: Final = "***"
_USERINFO: Final = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@'\"]+)@")
_SECRET_PARAMS: Final = frozenset({"password", "pass", "pwd", "token", "secret", "key", "auth"})


def redact_url(url: str) -> str:
    """``url`` without its password (the user name stays) or secret query parameters."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            masked = [(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
            query = urlencode(masked, safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    text = (
        f"{parts.scheme}://{netloc}{parts.path}"
        if "://" in url
        else urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    )
    return text + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


def scrub(text: str) -> str:
    """``text`` with the user info of every URL in it replaced by ``***``."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)

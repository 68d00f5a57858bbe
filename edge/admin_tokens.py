"""The admins and their tokens: ADMIN_TOKEN (the admin named `admin`) and the named
ADMIN_TOKENS ("alice:<token>,bob:<token>"). Pure: no falcon here, so the settings (read
by the gunicorn master before forking) can check them at start."""

import hashlib
import hmac
import re
from collections.abc import Mapping

MIN_ADMIN_TOKEN = 32
# The name ADMIN_TOKEN signs in as.
DEFAULT_ADMIN = "admin"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,32}")
_HOW = "write ADMIN_TOKENS as name:token pairs separated by commas"


def check_length(where: str, token: str) -> None:
    """ValueError unless `token` is long enough to make guessing hopeless; names `where`,
    never the token."""
    if len(token) < MIN_ADMIN_TOKEN:
        raise ValueError(
            f"{where} must be at least {MIN_ADMIN_TOKEN} characters (is {len(token)}); "
            "make one with: openssl rand -hex 32"
        )


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AdminTokens:
    """Admin name -> token. Its repr names the admins, never a token."""

    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self._tokens = dict(tokens or {})
        # Digests are compared, not tokens: every comparison then takes the same time
        # whatever the length of the token presented.
        self._digests = {name: _digest(token) for name, token in self._tokens.items()}

    @classmethod
    def parse(cls, named: str, single: str = "") -> "AdminTokens":
        """ADMIN_TOKENS (`named`) and ADMIN_TOKEN (`single`, named `admin`). A bad entry
        raises ValueError naming it by position and, once the name is valid, by name;
        a token is never quoted, nor is a name that is not one (it may be a token)."""
        tokens: dict[str, str] = {}
        if single:
            check_length("ADMIN_TOKEN", single)
            tokens[DEFAULT_ADMIN] = single
        if not named.strip():
            return cls(tokens)
        for number, entry in enumerate(named.split(","), start=1):
            name, sep, token = entry.strip().partition(":")
            name, token = name.strip(), token.strip()
            where = f"ADMIN_TOKENS entry {number}"
            if not entry.strip():
                raise ValueError(f"{where} is empty: {_HOW}")
            if not sep or not name or not token:
                raise ValueError(f"{where} has no name or no token: {_HOW}")
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"{where}: the name before the colon must be 1 to 32 letters, digits, "
                    f"'.', '_' or '-': {_HOW}"
                )
            where = f"{where} ({name!r})"
            if name == DEFAULT_ADMIN and single:
                raise ValueError(
                    f"{where}: {DEFAULT_ADMIN!r} is the name of ADMIN_TOKEN; choose another "
                    "name, or leave ADMIN_TOKEN unset"
                )
            if name in tokens:
                raise ValueError(f"{where} names {name!r} a second time: one token per admin")
            check_length(f"{where}: the token", token)
            for other, known in tokens.items():
                if hmac.compare_digest(token.encode(), known.encode()):
                    whose = "ADMIN_TOKEN" if other == DEFAULT_ADMIN and single else repr(other)
                    raise ValueError(
                        f"{where} reuses the token of {whose}: every admin needs a token of "
                        "their own, so that every change says who made it"
                    )
            tokens[name] = token
        return cls(tokens)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def __repr__(self) -> str:
        return f"AdminTokens(admins={sorted(self._tokens)})"

    def names(self) -> list[str]:
        return sorted(self._tokens)

    def tokens(self) -> list[str]:
        """Every admin's token (for the log redaction)."""
        return list(self._tokens.values())

    def admin_of(self, presented: str) -> str | None:
        """The name of the admin whose token this is, or None. Compares with every token
        in constant time, so the time taken says nothing about a near miss nor about
        which admin it was."""
        given = _digest(presented)
        found = None
        for name, digest in self._digests.items():
            if hmac.compare_digest(given, digest):
                found = name
        return found

"""The callers of the gRPC services, their tokens (GRPC_AUTH_TOKENS) and what a
process shows the services it calls. Pure: no grpc here, so the settings of any
process (the gunicorn master included) can use it before forking."""

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

# The callers GRPC_AUTH_TOKENS may name. The edge (web process and worker) routes
# deals and reads for its dashboards; router_svc records, reverses and announces;
# notifier_svc reads the day's figures and the rules' chats for its daily summary;
# the operator is a person with grpcurl.
EDGE = "edge"
ROUTER = "router"
OPERATOR = "operator"
NOTIFIER = "notifier"
CALLERS = (EDGE, ROUTER, OPERATOR, NOTIFIER)


@dataclass(frozen=True)
class CallerCredentials:
    """What a process shows the services it calls: its GRPC_AUTH_TOKENS token and,
    with TLS, the CA it verifies servers against and its own certificate and key
    (servers require one). Built by CommonSettings.caller_credentials()."""

    token: str = field(default="", repr=False)
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""


class CallerTokens:
    """caller name -> token, parsed from GRPC_AUTH_TOKENS ("router:<t>,edge:<t>").
    Empty: authentication is off. Its repr names the callers, never a token."""

    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self._tokens = dict(tokens or {})

    @classmethod
    def parse(cls, text: str) -> "CallerTokens":
        """Parse the setting; a bad entry raises ValueError naming it (by position and
        caller, never by its token) and saying how to write it."""
        tokens: dict[str, str] = {}
        if not text.strip():
            return cls()
        how = "write GRPC_AUTH_TOKENS as caller:token pairs separated by commas"
        for number, entry in enumerate(text.split(","), start=1):
            caller, sep, token = entry.strip().partition(":")
            caller, token = caller.strip(), token.strip()
            where = f"GRPC_AUTH_TOKENS entry {number}"
            if not entry.strip():
                raise ValueError(f"{where} is empty: {how}")
            if not sep or not caller or not token:
                named = f" ({caller!r})" if sep and caller else ""
                raise ValueError(f"{where}{named} has no caller or no token: {how}")
            if caller not in CALLERS:
                raise ValueError(
                    f"{where} names unknown caller {caller!r}: use {', '.join(CALLERS)}"
                )
            if caller in tokens:
                raise ValueError(f"{where} names {caller!r} a second time: one token per caller")
            if token in tokens.values():
                raise ValueError(f"{where} ({caller!r}) reuses another caller's token")
            tokens[caller] = token
        return cls(tokens)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def tokens(self) -> list[str]:
        """Every caller's token (for the log redaction)."""
        return list(self._tokens.values())

    def __repr__(self) -> str:
        return f"CallerTokens(callers={sorted(self._tokens)})"

    def token_of(self, caller: str) -> str:
        """This process's own token ("" while authentication is off)."""
        if not self._tokens:
            return ""
        if caller not in self._tokens:
            raise ValueError(
                f"GRPC_AUTH_TOKENS has no entry for {caller!r}, which this process calls as: "
                f"add {caller}:<token> (the same value in every pod)"
            )
        return self._tokens[caller]

    def caller_of(self, presented: str) -> str | None:
        """The caller whose token this is, or None. Compares with every token in
        constant time, so the time taken says nothing about a near miss."""
        found = None
        for caller, token in self._tokens.items():
            if hmac.compare_digest(presented.encode(), token.encode()):
                found = caller
        return found

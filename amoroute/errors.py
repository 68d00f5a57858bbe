"""Errors a servicer raises; the gRPC server maps them to status codes."""


class ServiceError(Exception):
    """Base class: an error whose message is safe to show the caller."""


class InvalidArgument(ServiceError):
    """A request field is missing or malformed. The message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def within(self, prefix: str) -> "InvalidArgument":
        """The same error for a field inside `prefix`, e.g. requests[3]."""
        return InvalidArgument(f"{prefix}.{self.field}", self.problem)


class NotFound(ServiceError):
    """The thing asked for does not exist."""


class Unavailable(ServiceError):
    """A dependency is down; the caller may retry."""


class FailedPrecondition(ServiceError):
    """The system is not in a state the call needs (e.g. rules kept in a file cannot be
    edited over gRPC); the message says what to change. Retrying will not help."""


class Aborted(ServiceError):
    """A concurrent change won (e.g. an edit started from a version that is no longer
    current); the caller rereads and tries again."""

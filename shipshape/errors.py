"""One exception hierarchy. Each class carries the exit code that every task shares.

``shipshape.tasks._task`` is the only place where these become exit codes; library code
raises them with one clear paragraph: what happened, where, and the command that fixes it.
"""


class ShipshapeError(Exception):
    """Base class: a known failure with a message meant for an operator."""

    exit_code = 1

    def __init__(self, message: str, *, details: list[str] | None = None, result=None):
        super().__init__(message)
        self.message = message
        self.details = list(details or [])
        # What the failing command had done so far (a deploy's gates, a runbook run), so
        # that its caller can still show it.
        self.result = result
        # True once the caller's output already carries this error (a JSON document on
        # stdout): the exit-code handler then prints only the paragraph on stderr.
        self.reported = False

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {d}" for d in self.details)


class ProblemsFound(ShipshapeError):
    """Pending migrations, drift, missing seed rows, failing data checks."""

    exit_code = 2

    def __init__(self, message: str, *, findings=None, details=None, result=None):
        super().__init__(message, details=details, result=result)
        self.findings = list(findings or [])


class Refused(ShipshapeError):
    """Unsafe without confirmation, checksum mismatch, database ahead of the code."""

    exit_code = 3


class OldReleaseRunning(Refused):
    """A contract migration refused while a replica of a release it breaks is alive
    (engine.releases): the Pulumi contract gate defers on it instead of failing."""


class Busy(ShipshapeError):
    """The migration lock or a table lock was not acquired in time."""

    exit_code = 4


class ConfigError(ShipshapeError):
    """Bad input or configuration: unknown env, template error, unreachable database."""

    exit_code = 5


class SQLFailed(ShipshapeError):
    """SQL failed while applying; the transaction was rolled back."""

    exit_code = 6

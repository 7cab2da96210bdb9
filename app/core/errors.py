"""Exception hierarchy.

    FleetgenError
    ├── ConfigError          invalid or unreadable configuration (exit code 2)
    ├── UsageError           a request that cannot be used as given (exit code 2)
    │   ├── RangeError       a time range that is empty or would leave a gap in the ledger
    │   └── DataDirBusy      another fleetgen process is writing to the data directory
    ├── PublishError         a batch could not be written to bronze
    ├── StoreError           the metadata store is unavailable or inconsistent
    ├── LifecycleError       an operation not allowed in the current state (e.g. clean while running)
    ├── Abandoned            a batch given up at shutdown before it became visible
    └── ListenError          the API cannot bind its address
"""

import time


class FleetgenError(Exception):
    """Base class of every error fleetgen raises on purpose."""


class ConfigError(FleetgenError):
    """A configuration problem; ``problems`` lists one line per offending field."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration{where}:\n{lines}")


class UsageError(FleetgenError):
    """A request (command-line option, argument) that cannot be used as given."""


class PublishError(FleetgenError):
    """A batch could not be published; nothing of it is visible."""


class StoreError(FleetgenError):
    """The metadata store failed."""


class LifecycleError(FleetgenError):
    """The operation is not allowed in the current lifecycle state."""


class Abandoned(FleetgenError):
    """Shutdown came first: the batch was dropped before becoming visible and will be redone."""


class ListenError(FleetgenError):
    """The API cannot bind its address (in use, or not allowed)."""

    def __init__(self, host: str, port: int, reason: str):
        self.host, self.port, self.reason = host, port, reason
        super().__init__(f"cannot listen on {host}:{port}: {reason} (set api.port to another port)")


class RangeError(UsageError):
    """A time range that cannot be produced: empty, or leaving a gap after the ledger's end.

    ``problem`` is ``"empty"`` or ``"gap"``; the CLI words it with its own option names.
    """

    def __init__(self, problem: str, start: str, end: str, stream: str | None = None,
                 ledger_end: str | None = None):
        self.problem, self.start, self.end, self.stream, self.ledger_end = problem, start, end, stream, ledger_end
        if problem == "empty":
            message = f"the range end ({end}) must be after its start ({start})"
        else:
            message = (f"the {stream} ledger ends at {ledger_end}, before the range start {start}: a backfill "
                       "continues a ledger and cannot leave a gap; start at or before that time, or use a "
                       "fresh data directory")
        super().__init__(message)


class DataDirBusy(UsageError):
    """Another fleetgen process is writing to the data directory (exit code 2)."""

    def __init__(self, data_dir: object, holder: dict[str, object]):
        self.data_dir, self.holder = data_dir, holder
        since = holder.get("since")
        when = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(since)))
                if isinstance(since, (int, float)) else "an unknown time")
        super().__init__(f"data directory {data_dir} is in use by fleetgen {holder.get('command', '?')} "
                         f"(pid {holder.get('pid', '?')}, since {when}); stop it first, or use another "
                         "data directory")

"""Exception hierarchy.

    FleetgenError
    ├── ConfigError          invalid or unreadable configuration (exit code 2)
    ├── UsageError           bad command-line arguments (exit code 2)
    ├── PublishError         a batch could not be written to bronze
    ├── StoreError           the metadata store is unavailable or inconsistent
    ├── LifecycleError       an operation not allowed in the current state (e.g. clean while running)
    └── Abandoned            a batch given up at shutdown before it became visible
"""


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
    """A command-line argument that cannot be used."""


class PublishError(FleetgenError):
    """A batch could not be published; nothing of it is visible."""


class StoreError(FleetgenError):
    """The metadata store failed."""


class LifecycleError(FleetgenError):
    """The operation is not allowed in the current lifecycle state."""


class Abandoned(FleetgenError):
    """Shutdown came first: the batch was dropped before becoming visible and will be redone."""

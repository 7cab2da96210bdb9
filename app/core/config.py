"""Configuration models and loading: the only place that parses YAML."""

from __future__ import annotations

import difflib
import os
import re
import reprlib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import isodate
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from app.core.errors import ConfigError
from app.core.storage import ObjectStore, default_work_dir, local_path, location_problem
from app.core.workday import max_rate_per_window, mean_deliveries

MODE_ENV_VAR = "FLEETGEN_MODE"
# Peak memory of a production driver window, which is made in parts of bounded size (`fleetgen bench --only
# generation_large_window`: ~260 MB for 10 M events clean, ~290 MB with 15 % defects): what still grows with
# the window is its slot and shift tables (~5.5 bytes an event, from their arrays), the defect draw (8 bytes
# an event while the defective rows are chosen) and the defect plan while it is drawn (~110 bytes a defect
# with the records it reads; it is then spilled to a file, see generation/spill.py).
PART_BYTES = 300 * 2**20
BYTES_PER_EVENT = 16
BYTES_PER_DEFECT = 128
PEAK_WINDOW_FACTOR = 3.0  # busiest driver window / mean driver window (24 h / the shortest shift)
BYTES_PER_DRIVER = 40  # the shift table's row and its making, per driver of a production window
MEMORY_SHARE = 0.5
BYTES_PER_SPAN_EVENT = 16  # late arrival: per event of each earlier window looked back on (~9 measured)
MAX_LATE_REACH = 96  # driver windows a production late event may travel (a day of 15-minute windows)
MAX_LATE_REACH_EMULATED = 3600
MODES = ("production", "emulated")
Geography = Literal["US", "EU", "SA", "AUS"]
EventType = Literal["start_driving", "stopped_driving", "delivered"]
GEOGRAPHIES: tuple[Geography, ...] = ("US", "EU", "SA", "AUS")
EVENT_TYPES: tuple[EventType, ...] = ("start_driving", "stopped_driving", "delivered")
DEFECT_TYPES = (
    "missing_field",
    "null_value",
    "malformed_timestamp",
    "invalid_enum",
    "duplicate",
    "boundary_violation",
)
# Names users reach for that difflib alone would not map to the real key.
KEY_HINTS = {
    "corruption_rate": "error_rate",
    "defect_rate": "error_rate",
    "mode": "emulated_mode",
    "companies_per_interval": "companies_per_batch",
}
# Keys earlier versions had: why they went, instead of a bare "unknown key".
RETIRED_KEYS = {
    "location_spread_degrees": "emulated drivers now drive legs from their company's depot (see the README's "
                               "driver behaviour); remove the key",
}


def parse_duration(value: Any) -> timedelta:
    """ISO 8601 duration in whole seconds, at least 1 s; no years or months."""
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, str):
        try:
            duration = isodate.parse_duration(value.strip())
        except (isodate.ISO8601Error, ValueError):
            raise ValueError("must be an ISO 8601 duration such as PT10S or PT1H30M") from None
        if not isinstance(duration, timedelta):
            raise ValueError("years and months have no fixed length; use days, hours, minutes or seconds")
    else:
        raise ValueError("must be an ISO 8601 duration string such as PT10S or PT1H30M")
    if duration < timedelta(seconds=1):
        raise ValueError("must be at least 1 second (PT1S)")
    if duration.microseconds:
        raise ValueError("must be a whole number of seconds")
    return duration


def format_duration(duration: timedelta) -> str:
    return str(isodate.duration_isoformat(duration))


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


MASKED = "***"
# storage_options whose values are credentials (s3fs key/secret/token, adlfs account_key/sas_token/…)
SECRET_OPTION = re.compile(r"key|secret|token|password|credential|sas|connection_string", re.I)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class QualityInjectionConfig(StrictModel):
    enabled: bool = False
    error_rate: Probability = 0.0
    missing_field_probability: Probability = 0.3
    null_value_probability: Probability = 0.3
    malformed_timestamp_probability: Probability = 0.2
    invalid_enum_probability: Probability = 0.1
    duplicate_probability: Probability = 0.05
    boundary_violation_probability: Probability = 0.05
    inject_in_driver_events: bool = True
    inject_in_companies: bool = True
    log_injected_issues: bool = True

    @model_validator(mode="after")
    def _some_type_enabled(self) -> QualityInjectionConfig:
        if self.enabled and self.error_rate > 0 and sum(self.type_weights().values()) == 0:
            raise ValueError(
                "error_rate > 0 needs at least one *_probability above 0 to choose defect types from"
            )
        return self

    def type_weights(self) -> dict[str, float]:
        return {name: getattr(self, f"{name}_probability") for name in DEFECT_TYPES}

    def effective_rate(self, stream: str) -> float:
        """Share of records of ``stream`` that carry a defect."""
        if not self.enabled:
            return 0.0
        if stream == "companies" and not self.inject_in_companies:
            return 0.0
        if stream == "events" and not self.inject_in_driver_events:
            return 0.0
        return self.error_rate


class EmulatedModeConfig(StrictModel):
    enabled: bool = False
    company_batch_interval: Duration = timedelta(seconds=10)
    driver_batch_interval: Duration = timedelta(seconds=10)
    companies_per_batch: int = Field(10, ge=1, le=100)
    events_per_batch_min: int = Field(5, ge=1)
    events_per_batch_max: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _max_not_below_min(self) -> EmulatedModeConfig:
        if self.events_per_batch_max < self.events_per_batch_min:
            raise ValueError(
                f"events_per_batch_max ({self.events_per_batch_max}) must be >= "
                f"events_per_batch_min ({self.events_per_batch_min})"
            )
        span_ms = int(self.driver_batch_interval.total_seconds()) * 1000
        if self.events_per_batch_max > span_ms:
            raise ValueError(
                f"events_per_batch_max ({self.events_per_batch_max}) must be at most {span_ms}: each event of a "
                f"batch takes its own millisecond of the {format_duration(self.driver_batch_interval)} window "
                "(so a driver's events are ordered by time); lower it or lengthen driver_batch_interval")
        return self


def _weights_field(keys: tuple[str, ...], defaults: tuple[float, ...]) -> Any:
    return Field(default_factory=lambda: dict(zip(keys, defaults, strict=True)))


class ChurnConfig(StrictModel):
    """Production companies leave and change their driver count over time (off by default)."""

    monthly_rate: float = Field(0.0, ge=0.0, lt=1.0)  # share of companies leaving within any 30 days
    driver_changes_per_month: float = Field(0.0, ge=0.0, le=10.0)  # drivers_count changes per company

    @property
    def enabled(self) -> bool:
        return self.monthly_rate > 0 or self.driver_changes_per_month > 0


class CompaniesConfig(StrictModel):
    geography_weights: dict[Geography, float] = _weights_field(
        GEOGRAPHIES, (0.4, 0.3, 0.15, 0.15)
    )
    active_probability: Probability = 0.95
    churn: ChurnConfig = Field(default_factory=ChurnConfig)

    @model_validator(mode="after")
    def _weights_usable(self) -> CompaniesConfig:
        _check_weights(self.geography_weights, "geography_weights")
        return self


class EventsConfig(StrictModel):
    event_type_weights: dict[EventType, float] = _weights_field(EVENT_TYPES, (0.40, 0.35, 0.25))
    trucks_per_driver: float = Field(1.1, ge=1.0, le=10.0)  # a company's fleet: ceil(drivers × this), ≤ 9999

    @model_validator(mode="after")
    def _weights_usable(self) -> EventsConfig:
        _check_weights(self.event_type_weights, "event_type_weights")
        return self


def _check_weights(weights: Mapping[Any, float], name: str) -> None:
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"{name} must not be negative")
    if sum(weights.values()) <= 0:
        raise ValueError(f"{name} must have at least one weight above 0")


SHARED_DIRECTORIES = ("/", "/root", "/home", "/tmp", "/etc", "/usr", "/var")


def shared_directory_problem(data_dir: Path) -> str | None:
    """Why ``data_dir`` cannot be fleetgen's own folder (a system or home directory), or None."""
    resolved = data_dir.resolve()
    if resolved in {Path(p) for p in SHARED_DIRECTORIES} | {Path.home().resolve()}:
        return (f"{resolved} is a system or home directory; fleetgen needs a folder of its own "
                "(it writes raw/, manifests/ and .staging/ there, and clean deletes from it)")
    return None


class OutputConfig(StrictModel):
    # a local folder, or object storage: s3://bucket/prefix, gs://…, abfs://…, file:///…
    data_dir: str = "data"
    format: Literal["jsonl", "parquet"] = "jsonl"
    layout: Literal["batch", "hive"] = "batch"  # raw/<stream>/<batch_id>/ or …/date=…/hour=…/batch_id=…/
    # object storage only: where the ledger, the writer's lock and staging live (a local folder)
    work_dir: Path | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)  # passed to the fsspec filesystem

    @field_validator("data_dir", mode="before")
    @classmethod
    def _supported_location(cls, value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("must not be empty")
            problem = location_problem(value)
            local = local_path(value)
            if problem is None and local is not None:
                problem = shared_directory_problem(local)
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _remote_settings(self) -> OutputConfig:
        if self.url is None and self.work_dir is not None:
            raise ValueError("work_dir is for an object-storage data_dir (s3://, gs://, abfs://); a local data_dir "
                             "keeps its ledger and staging itself")
        if self.url is None and self.storage_options:
            raise ValueError("storage_options is for an object-storage data_dir (s3://, gs://, abfs://)")
        if self.work_dir is not None:
            problem = shared_directory_problem(self.work_dir)
            if problem:
                raise ValueError(f"work_dir: {problem}")
        return self

    @property
    def url(self) -> str | None:
        """The object-storage URL of the data directory, or None when it is a local folder."""
        location = str(self.data_dir)  # str() too: a model_copy(update=...) may have put a Path there
        return location.rstrip("/") if local_path(location) is None else None

    @property
    def local_dir(self) -> Path:
        """The local folder fleetgen writes: the data directory itself, or an object-storage data
        directory's work dir (ledger, lock, staging and a copy of the manifests)."""
        local = local_path(str(self.data_dir))
        if local is not None:
            return local
        return self.work_dir or default_work_dir(str(self.data_dir))

    def object_store(self) -> ObjectStore | None:
        url = self.url
        return ObjectStore(url, dict(self.storage_options)) if url else None


class DatabaseConfig(StrictModel):
    url: str | None = None  # default: sqlite file manifests/generator.db under data_dir
    busy_timeout_ms: int = Field(10_000, ge=0, le=600_000)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9.\-]+$|^[0-9A-Fa-f:.]+$")


class ApiConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    token: str | None = Field(None, min_length=8, max_length=512)
    cors_origins: list[str] = Field(default_factory=list, max_length=100)  # e.g. http://localhost:5173
    allowed_hosts: list[str] = Field(default_factory=list, max_length=100)  # Host names besides loopback
    protect_reads: bool = False  # the token guards logs, batches, chart, events and metrics too
    allow_unauthenticated: bool = False  # a non-loopback host without a token, on purpose

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _ORIGIN.match(value):
                raise ValueError(f"{value!r} is not an origin: scheme://host[:port], no path or trailing "
                                 "slash (e.g. http://localhost:5173)")
        return [value.lower() for value in values]

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _HOST_NAME.match(value):
                raise ValueError(f"{value!r} is not a host name (no scheme, port or path: e.g. fleetgen.internal)")
        return [value.lower() for value in values]

    @model_validator(mode="after")
    def _exposure_is_deliberate(self) -> ApiConfig:
        if self.protect_reads and not self.token:
            raise ValueError("protect_reads needs api.token (there is nothing to protect the reads with)")
        if self.host not in LOOPBACK_HOSTS and not self.token and not self.allow_unauthenticated:
            raise ValueError(f"host {self.host!r} is reachable from other machines and no api.token is set: "
                             "anyone who reaches it could pause the service and delete the data; set "
                             "api.token, or api.allow_unauthenticated: true to accept that")
        return self


class LateArrivalConfig(StrictModel):
    """Events that reach bronze in a later batch than their own window (valid data, unlike a defect)."""

    probability: float = Field(0.0, ge=0.0, le=0.5)
    max_delay: Duration = timedelta(minutes=30)


class SchedulingConfig(StrictModel):
    max_catch_up_windows: int = Field(1000, ge=1, le=1_000_000)


class Config(StrictModel):
    seed: int = Field(42, ge=0, le=2**63 - 1)
    number_of_companies: int = Field(100, ge=1, le=1_000_000)
    drivers_per_company: int = Field(10, ge=1, le=9999)
    event_rate_per_driver: float = Field(3.5, ge=0.0, le=10_000.0)
    company_onboarding_interval: Duration = timedelta(hours=1)
    driver_event_interval: Duration = timedelta(minutes=15)
    quality_injection: QualityInjectionConfig = Field(default_factory=QualityInjectionConfig)
    emulated_mode: EmulatedModeConfig = Field(default_factory=EmulatedModeConfig)
    companies: CompaniesConfig = Field(default_factory=CompaniesConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    late_arrival: LateArrivalConfig = Field(default_factory=LateArrivalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    scheduling: SchedulingConfig = Field(default_factory=SchedulingConfig)

    @property
    def generation_mode(self) -> str:
        return "emulated" if self.emulated_mode.enabled else "production"

    @property
    def active_company_interval(self) -> timedelta:
        if self.emulated_mode.enabled:
            return self.emulated_mode.company_batch_interval
        return self.company_onboarding_interval

    @property
    def active_driver_interval(self) -> timedelta:
        if self.emulated_mode.enabled:
            return self.emulated_mode.driver_batch_interval
        return self.driver_event_interval

    @property
    def active_company_count(self) -> int:
        if self.emulated_mode.enabled:
            return self.emulated_mode.companies_per_batch
        return self.number_of_companies

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.output.local_dir / 'manifests' / 'generator.db').resolve()}"

    def with_mode(self, mode: str) -> Config:
        """The same settings in another mode, checked again (production may not fit where emulated does)."""
        emulated = self.emulated_mode.model_copy(update={"enabled": mode == "emulated"})
        switched = self.model_copy(update={"emulated_mode": emulated})
        problem = (churn_problem(switched) or late_problem(switched) or memory_problem(switched)
                   or shift_problem(switched))
        if problem:
            raise ConfigError([f"in {mode} mode: {problem}"])
        return switched

    @model_validator(mode="after")
    def _fits_in_memory(self) -> Config:
        problem = churn_problem(self) or late_problem(self) or memory_problem(self) or shift_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def late_reach(self) -> int:
        """Earlier driver windows whose events may arrive in a window (0: late arrival is off)."""
        if self.late_arrival.probability == 0:
            return 0
        return int(self.late_arrival.max_delay.total_seconds() // self.active_driver_interval.total_seconds())

    def with_data_dir(self, data_dir: str | Path) -> Config:
        """The same settings writing to another data directory (checked like the config file's)."""
        try:
            output = OutputConfig.model_validate({**self.output.model_dump(), "data_dir": str(data_dir)})
        except ValidationError as exc:
            raise ConfigError([f"output.{line}" for line in describe_validation_errors(exc)]) from None
        return self.model_copy(update={"output": output})

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready view of every setting (the API token and storage credentials hidden: the snapshot is
        written into the dataset's descriptor, uploaded beside the batches)."""
        data = self.model_dump(mode="json")
        if data["api"]["token"]:
            data["api"]["token"] = MASKED
        data["output"]["storage_options"] = {
            name: MASKED if SECRET_OPTION.search(name) else value
            for name, value in data["output"]["storage_options"].items()}
        return data


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config; raise ConfigError listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"file not found: {source}"], source) from None
    except IsADirectoryError:
        raise ConfigError([f"is a directory, not a YAML file: {source}"], source) from None
    except OSError as exc:
        raise ConfigError([f"cannot read {source}: {exc.strerror}"], source) from None
    return parse_config(text, source)


def memory_problem(config: Config) -> str | None:
    """Why a production driver window (made in parts, with tables and a defect plan that grow with it)
    cannot fit, or None."""
    if config.emulated_mode.enabled:
        return None  # at most events_per_batch_max events, whatever the roster
    drivers = config.number_of_companies * config.drivers_per_company
    # drivers work a 8-10 hour shift of their region's day: the busiest window holds up to 24/8 times the mean
    events = drivers * config.event_rate_per_driver * PEAK_WINDOW_FACTOR
    defects = events * config.quality_injection.effective_rate("events")
    needed = (PART_BYTES + events * BYTES_PER_EVENT + defects * BYTES_PER_DEFECT + drivers * BYTES_PER_DRIVER
              + events * config.late_reach * BYTES_PER_SPAN_EVENT)
    available = physical_memory_bytes() * MEMORY_SHARE
    if needed <= available:
        return None
    return (f"number_of_companies × drivers_per_company × event_rate_per_driver = {config.number_of_companies:,} × "
            f"{config.drivers_per_company:,} × {config.event_rate_per_driver:g} × {PEAK_WINDOW_FACTOR:g} (the busiest "
            f"hour of the working day) ≈ {events:,.0f} events per driver window, about {needed / 2**30:,.1f} GiB "
            f"to generate (in parts, but its tables and defect plan grow with it); this machine allows "
            f"{available / 2**30:,.1f} GiB (half of its RAM): lower one "
            "of them")


def churn_problem(config: Config) -> str | None:
    """Why ``companies.churn`` cannot apply (emulated mode's time-lapse has no months), or None."""
    if config.emulated_mode.enabled and config.companies.churn.enabled:
        return ("companies.churn applies to production mode (tenures and driver changes are counted in months, "
                "which an emulated run never reaches); remove it, or run in production mode")
    return None


def late_problem(config: Config) -> str | None:
    """Why ``late_arrival`` cannot work with the driver interval of the active mode, or None."""
    late = config.late_arrival
    if late.probability == 0:
        return None
    interval, delay = config.active_driver_interval, late.max_delay
    where = "emulated_mode.driver_batch_interval" if config.emulated_mode.enabled else "driver_event_interval"
    if delay < interval:
        return (f"late_arrival.max_delay ({format_duration(delay)}) must be at least the driver interval "
                f"({where}: {format_duration(interval)}): a late event arrives in a later batch, at most max_delay "
                "after it happened")
    reach = config.late_reach
    limit = MAX_LATE_REACH_EMULATED if config.emulated_mode.enabled else MAX_LATE_REACH
    if reach > limit:
        cost = ("the pending late events are carried in the store from batch to batch" if config.emulated_mode.enabled
                else "each window is derived from the windows it may receive late events from")
        return (f"late_arrival.max_delay ({format_duration(delay)}) spans {reach:,} driver windows of "
                f"{format_duration(interval)}; at most {limit:,} ({cost}): shorten it")
    return None


def shift_problem(config: Config) -> str | None:
    """Why production drivers cannot make ``event_rate_per_driver`` events per window within their shifts."""
    if config.emulated_mode.enabled:
        return None
    weights = [config.events.event_type_weights.get(t, 0.0) for t in EVENT_TYPES]
    window_s = int(config.driver_event_interval.total_seconds())
    limit = max_rate_per_window(window_s, mean_deliveries(weights))
    if config.event_rate_per_driver <= limit:
        return None
    return (f"event_rate_per_driver: {config.event_rate_per_driver:g} events per driver per "
            f"{format_duration(config.driver_event_interval)} is more than a driver's 8-10 hour shift holds "
            f"(at most {limit:,.1f}: a stop every 2 s); lower it or shorten driver_event_interval")


def physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one mapping (YAML would silently keep the last)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that repeats a key."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:
            continue  # an unhashable key: the default constructor reports it
        line = key_node.start_mark.line + 1
        if first is not None:
            raise DuplicateKeyError(f"duplicate key {key!r} at lines {first} and {line} "
                                    "(YAML would silently keep the last one; keep one of them)")
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_config(text: bytes | str, source: str = "<config>") -> Config:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise ConfigError([str(exc)], source) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "malformed document"
        raise ConfigError([f"not valid YAML{where}: {problem}"], source) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError([f"not a readable YAML text file: {exc}"], source) from None
    except RecursionError:
        raise ConfigError(["the YAML document is nested too deeply"], source) from None
    if data is None:
        raise ConfigError(["config file is empty; write {} to accept every default"], source)
    if not isinstance(data, dict):
        raise ConfigError(
            [f"the top level must be a mapping of settings, got {type(data).__name__}"], source
        )
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_errors(exc), source) from None
    except RecursionError:
        raise ConfigError(["the YAML document is nested too deeply"], source) from None


def describe_validation_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        path = ".".join(p if _PLAIN_KEY.fullmatch(p) else repr(p) for p in loc) or "<top level>"
        if err["type"] == "extra_forbidden":
            problems.append(f"{path}: unknown key{_suggestion(loc)}")
            continue
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            problems.append(f"{path}: required field is missing")
        elif isinstance(err.get("input"), dict) and err["type"] == "value_error":
            problems.append(f"{path}: {message}")
        else:
            problems.append(f"{path}: {_show(err.get('input'))} — {message}")
    return problems


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 2, 60, 60, 4, 4


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")


def _show(value: Any) -> str:
    """A bounded repr: a hostile value (huge, deep, self-referencing) must not blow up the message."""
    text = _SHORT.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _suggestion(loc: list[str]) -> str:
    model: Any = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type):
            return ""
        model = field.annotation
        if not issubclass(model, BaseModel):
            return ""
    key = loc[-1]
    if key in RETIRED_KEYS:
        return f": retired; {RETIRED_KEYS[key]}"
    known = list(model.model_fields)
    hint = KEY_HINTS.get(key)
    if hint in known:
        return f"; did you mean `{hint}`?"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{close[0]}`?"
    nested = _nested_match(model, KEY_HINTS.get(key, key))
    if nested:
        return f"; did you mean `{nested}` (it belongs in that section)?"
    return f"; known keys here: {', '.join(known)}"


def _nested_match(model: Any, key: str) -> str | None:
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            close = difflib.get_close_matches(key, list(sub.model_fields), n=1, cutoff=0.8)
            if close:
                return f"{name}.{close[0]}"
    return None


def resolve_mode(config: Config, override: str | None, environ: dict[str, str] | None = None,
                 override_source: str = "mode override") -> tuple[Config, str]:
    """Apply the mode override (an explicit override beats the environment beats the file); return
    the source, named ``override_source`` when the override decided (the CLI names its option)."""
    env = os.environ if environ is None else environ
    if override is not None:
        if override not in MODES:
            raise ConfigError([f"{override_source}: {override!r} — must be one of {', '.join(MODES)}"])
        return config.with_mode(override), override_source
    env_mode = env.get(MODE_ENV_VAR)
    if env_mode:
        if env_mode not in MODES:
            raise ConfigError([f"{MODE_ENV_VAR}: {env_mode!r} — must be one of {', '.join(MODES)}"])
        return config.with_mode(env_mode), MODE_ENV_VAR
    if "enabled" in config.emulated_mode.model_fields_set:
        return config, "config file (emulated_mode.enabled)"
    return config, "default"


def effective_settings(config: Config, mode_source: str) -> dict[str, dict[str, Any]]:
    """Each active value with where it came from, for the start-up log and `validate`."""
    em = config.emulated_mode
    sources: list[tuple[str, BaseModel, str, str]]
    if em.enabled:
        sources = [("company_interval", em, "company_batch_interval", "emulated_mode."),
                   ("driver_interval", em, "driver_batch_interval", "emulated_mode."),
                   ("companies_per_batch", em, "companies_per_batch", "emulated_mode."),
                   ("events_per_batch_min", em, "events_per_batch_min", "emulated_mode."),
                   ("events_per_batch_max", em, "events_per_batch_max", "emulated_mode.")]
    else:
        sources = [("company_interval", config, "company_onboarding_interval", ""),
                   ("driver_interval", config, "driver_event_interval", ""),
                   ("companies_per_batch", config, "number_of_companies", ""),
                   ("event_rate_per_driver", config, "event_rate_per_driver", "")]
    result = {"generation_mode": {"value": config.generation_mode, "source": mode_source}}
    for name, model, field, prefix in [("seed", config, "seed", ""), *sources]:
        value = getattr(model, field)
        result[name] = {
            "value": format_duration(value) if isinstance(value, timedelta) else value,
            "source": f"config file ({prefix}{field})" if field in model.model_fields_set else "default",
        }
    return result

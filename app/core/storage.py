"""Where bronze lives: a local folder, or object storage through fsspec (s3://, gs://, abfs://).

A local ``output.data_dir`` is written in place (stage, fsync, rename). Object storage has no rename,
but each PUT is atomic per object, so a batch is uploaded file by file from its local staging folder
and becomes visible with its ``_SUCCESS`` object, uploaded last; readers that honour ``_SUCCESS`` never
see a batch in part. The ledger, the writer's lock and the staging folder stay on a local disk: the
*work dir* (``output.work_dir``, by default under ``$XDG_STATE_HOME/fleetgen``).
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# scheme -> (the fsspec implementation's module, the fleetgen extra that installs it)
SCHEMES: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
    "abfs": ("adlfs", "azure"), "abfss": ("adlfs", "azure"), "az": ("adlfs", "azure"),
}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$")


def split_url(value: str) -> tuple[str, str] | None:
    """(scheme, rest) of ``value`` written as a URL, else None (a plain path)."""
    match = _URL.match(value)
    return (match.group(1).lower(), match.group(2)) if match else None


def location_problem(value: str) -> str | None:
    """Why ``output.data_dir`` cannot be written, or None: an unsupported scheme, a bucket missing, or
    the scheme's fsspec package not installed."""
    parts = split_url(value)
    if parts is None or parts[0] == "file":
        return None
    scheme, rest = parts
    if scheme not in SCHEMES:
        supported = ", ".join(f"{s}://" for s in ("s3", "gs", "abfs", "file"))
        return f"{value!r}: the scheme {scheme}:// is not supported (supported: {supported} or a local path)"
    bucket = rest.split("/", 1)[0]
    if not bucket:
        return f"{value!r}: no bucket (write {scheme}://<bucket>/<prefix>)"
    module, extra = SCHEMES[scheme]
    if importlib.util.find_spec(module) is None:
        return f"{value!r} needs the {module} package: pip install 'fleetgen[{extra}]'"
    return None


def local_path(value: str) -> Path | None:
    """The local folder ``value`` names (a path or a file:// URL), or None for object storage."""
    parts = split_url(value)
    if parts is None:
        return Path(value)
    if parts[0] == "file":
        return Path(urlsplit(value).path or "/")
    return None


def default_work_dir(url: str) -> Path:
    """The local folder for a remote data directory's ledger, lock and staging: one per URL."""
    scheme, rest = split_url(url) or ("", url)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    parts = [part for part in rest.strip("/").split("/") if part not in ("", ".", "..")]
    safe = [re.sub(r"[^A-Za-z0-9._=-]", "_", part) for part in parts]
    return base / "fleetgen" / scheme / Path(*safe)


@dataclass(frozen=True)
class ObjectStore:
    """A bronze root on object storage: ``url`` (``s3://bucket/prefix``) through an fsspec filesystem."""

    url: str
    options: dict[str, Any]

    @property
    def scheme(self) -> str:
        return (split_url(self.url) or ("", ""))[0]

    @property
    def root(self) -> str:
        """The root without its scheme, as fsspec paths are written (``bucket/prefix``)."""
        return (split_url(self.url) or ("", self.url))[1].rstrip("/")

    def filesystem(self) -> Any:
        """A fresh filesystem object (not fsspec's shared instance: listings are never served from a cache
        another part of the process filled). Endpoint and credentials come from ``options`` or the
        provider's standard environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, …)."""
        import fsspec

        options = dict(self.options)
        if self.scheme in ("s3", "s3a"):
            options.setdefault("use_listings_cache", False)
            options.setdefault("max_concurrency", 8)  # a large record file's parts go up in parallel
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            if endpoint and "endpoint_url" not in options and "endpoint_url" not in options.get("client_kwargs", {}):
                options["endpoint_url"] = endpoint
        protocol = "s3" if self.scheme == "s3a" else self.scheme
        return fsspec.filesystem(protocol, skip_instance_cache=True, **options)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}" if relative else self.root

    def uri(self, relative: str = "") -> str:
        return f"{self.scheme}://{self.path(relative)}"

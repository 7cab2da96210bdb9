"""The shipped config presets (`conf/` in a checkout, `app/_presets` in an installed wheel) and `fleetgen init`."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.core.config import Config
from app.core.errors import UsageError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PRESET = "emulated"


def presets_dir() -> Path:
    packaged = PACKAGE_ROOT / "_presets"
    return packaged if packaged.is_dir() else PACKAGE_ROOT.parent / "conf"


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def preset_text(name: str) -> str:
    path = presets_dir() / f"{name}.yaml"
    if not path.is_file():
        raise UsageError(f"--preset: {name!r} is not a preset; known: {', '.join(preset_names())}")
    return path.read_text(encoding="utf-8")


def starter_config(name: str) -> str:
    """The preset, then every setting with its default, commented out, so the file documents itself."""
    reference = yaml.safe_dump(Config().snapshot(), sort_keys=False).rstrip("\n").splitlines()
    commented = "\n".join(f"# {line}" for line in reference)
    return (f"# fleetgen configuration (from the {name!r} preset; `fleetgen validate FILE` checks it).\n"
            f"{preset_text(name).rstrip()}\n\n"
            "# ---- every setting and its default -------------------------------------------------\n"
            "# Uncomment a line (and its section) above to change it. Durations are ISO 8601 (PT10S);\n"
            "# database.url null means manifests/generator.db under output.data_dir.\n"
            f"{commented}\n")


def write_starter_config(name: str, path: Path, force: bool = False) -> Path:
    if path.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    text = starter_config(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path

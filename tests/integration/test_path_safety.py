"""Clean removes only what fleetgen wrote inside its own data directory."""

import os
from pathlib import Path

import pytest

from app.cli import main
from app.core import bronze
from app.core.errors import LifecycleError
from app.service.lifecycle import remove_generated
from app.service.pipeline import Pipeline
from app.store import Store
from tests.conftest import utc


@pytest.mark.parametrize("directory", ["/", str(Path.home()), "/etc", "/tmp"])
def test_system_and_home_directories_are_refused(directory):
    with pytest.raises(LifecycleError, match="refusing to clean"):
        remove_generated(bronze.Layout(Path(directory)))


def test_symlinks_and_foreign_files_are_left_alone(make_config, tmp_path):
    config = make_config(number_of_companies=3)
    pipeline = Pipeline(config, Store(config.database_url))
    pipeline.catch_up("events", utc(2026, 11, 25, 10, 0, 1))
    data = config.output.local_dir
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("not fleetgen's")
    os.symlink(outside, data / "raw/events/20991231T000000Z")  # looks like a batch, points outside
    os.symlink(outside / "keep.txt", data / ".staging/events-20991231T000000Z")
    (data / "raw/events/README").write_text("a user's note")
    (data / "raw/events/20261125T000000Z.bak").mkdir()
    (data / "manifests/notes.md").write_text("mine")

    report = remove_generated(pipeline.layout)
    assert report.removed_batches == 2
    assert (outside / "keep.txt").read_text() == "not fleetgen's"
    assert (data / "raw/events/20991231T000000Z").is_symlink()
    assert (data / "raw/events/README").exists() and (data / "raw/events/20261125T000000Z.bak").exists()
    assert (data / "manifests/notes.md").exists() and (data / "manifests/generator.db").exists()
    assert not (data / "manifests/batch_manifest.json").exists()
    assert list((data / ".staging").iterdir()) == []
    assert any("20991231T000000Z" in s for s in report.skipped)


def test_stream_folder_symlinked_elsewhere_is_not_followed(make_config, tmp_path):
    config = make_config()
    layout = bronze.Layout(config.output.local_dir)
    layout.ensure()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "20261125T000000Z").mkdir(parents=True)
    (layout.raw / "companies").rmdir()
    os.symlink(elsewhere, layout.raw / "companies")
    report = remove_generated(layout)
    assert (elsewhere / "20261125T000000Z").exists()
    assert any("symlink" in s for s in report.skipped)


def test_cli_clean_refuses_root_and_cleans_a_real_directory(write_config, tmp_path, capsys):
    bad = write_config({}, data_dir=Path("/"))
    store_existed = Path("/manifests/generator.db").exists()
    assert main(["clean", "--config", str(bad), "--yes"]) == 2  # refused with the config, before any step
    assert "output.data_dir: '/'" in capsys.readouterr().err
    assert store_existed or not Path("/manifests").exists()  # nothing was created there either
    good = write_config({"number_of_companies": 2}, data_dir=tmp_path / "d")
    assert main(["generate", "--config", str(good), "--stream", "events", "--at", "2026-11-25T10:00:01Z"]) == 0
    capsys.readouterr()
    assert main(["clean", "--config", str(good), "--yes"]) == 0
    assert '"removed_batches": 2' in capsys.readouterr().out
    assert list((tmp_path / "d/raw/events").iterdir()) == []


@pytest.mark.parametrize("command", [["run"], ["generate", "--stream", "events"], ["status"]])
def test_data_dir_override_to_a_shared_directory_is_refused_before_anything_is_written(
        command, write_config, capsys):
    path = write_config({"seed": 1})
    assert main([command[0], "--config", str(path), *command[1:], "--data-dir", "/"]) == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "system or home directory" in err and "Traceback" not in err
    assert not Path("/raw").exists() and not Path("/manifests").exists()


def test_status_is_read_only_it_creates_and_migrates_nothing(write_config, tmp_path, capsys):
    path = write_config({"seed": 1, "output": {"data_dir": str(tmp_path / "fresh")}})
    assert main(["status", "--config", str(path)]) == 0
    assert "no metadata store yet" in capsys.readouterr().out
    assert not (tmp_path / "fresh").exists()  # nothing made on the way
    assert main(["generate", "--config", str(path), "--stream", "companies"]) == 0
    database = tmp_path / "fresh" / "manifests" / "generator.db"
    before = database.stat().st_mtime_ns
    capsys.readouterr()
    assert main(["status", "--config", str(path)]) == 0
    assert '"committed"' in capsys.readouterr().out
    assert database.stat().st_mtime_ns == before  # no migration, no write

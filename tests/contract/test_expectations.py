"""`fleetgen expect` equals an independent DuckDB silver / gold over bronze (the dictionary's rules),
and `fleetgen verify` tells equal tables from a removed, an extra and a changed row, in Parquet, CSV
and Delta, with a bad input refused (exit 2)."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.cli import main
from tests.silver_reference import gold_queries, silver_rows

FLAT_EVENTS = ("event_id, company_id, driver_id, truck_id, event_type, event_timestamp, "
               "location.lat AS \"location.lat\", location.lon AS \"location.lon\", batch_id, "
               "window_start::TIMESTAMP AS own_window")


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    return con


def differences(con, left: str, right: str) -> tuple[int, int]:
    """Rows only in ``left``, rows only in ``right`` (multisets)."""
    only_left = con.sql(f"SELECT count(*) FROM (({left}) EXCEPT ALL ({right}))").fetchall()[0][0]
    only_right = con.sql(f"SELECT count(*) FROM (({right}) EXCEPT ALL ({left}))").fetchall()[0][0]
    return only_left, only_right


@pytest.fixture(scope="module")
def expected(bronze, tmp_path_factory):
    """`fleetgen expect` run on each dataset, through the command line."""
    made = {}
    for dataset in ("production", "defects"):
        out = tmp_path_factory.mktemp(f"expect-{dataset}")
        assert main(["expect", "--data-dir", str(bronze[dataset]), "--out", str(out)]) == 0
        made[dataset] = out
    return made


@pytest.mark.parametrize("dataset", ["production", "defects"])
def test_expect_equals_an_independent_duckdb_silver_and_gold(bronze, expected, dataset, capsys):
    con = connect()
    data, out = bronze[dataset], expected[dataset]
    reference_events = silver_rows(data, "events")
    tables = {
        "silver/events": (f"SELECT {FLAT_EVENTS} FROM '{out}/silver/events.parquet'", reference_events),
        "silver/companies": (f"SELECT * FROM '{out}/silver/companies.parquet'", silver_rows(data, "companies")),
    }
    for name, query in gold_queries(reference_events).items():
        tables[f"gold/{name}"] = (f"SELECT * FROM '{out}/gold/{name}.parquet'", query)
    summary = json.loads((out / "expectations.json").read_text())
    for name, (ours, reference) in tables.items():
        assert differences(con, ours, reference) == (0, 0), name
        rows = con.sql(f"SELECT count(*) FROM ({reference})").fetchall()[0][0]
        assert summary["tables"][name]["rows"] == rows > 0, name
    valid = sum(json.loads((b / "_batch_meta.json").read_text())["valid_count"]
                for b in (data / "raw/events").iterdir())
    assert summary["tables"]["silver/events"]["rows"] == valid


def test_expect_refuses_a_config_that_did_not_write_the_bronze(bronze, tmp_path, write_config, capsys):
    other = write_config({"seed": 12345})  # the production data, another seed
    code = main(["expect", "--data-dir", str(bronze["production"]), "--config", str(other),
                 "--out", str(tmp_path / "e")])
    assert code == 2
    assert "was not written with this configuration" in capsys.readouterr().err
    assert list((tmp_path / "e").iterdir()) == []  # its spilled records went with it


def test_expect_makes_windows_in_parts_and_leaves_only_its_tables(bronze, expected, tmp_path, monkeypatch, capsys):
    """Windows made part by part (a production window larger than HELD_EVENTS is: its defect plan spilled
    to a file) give the same tables as windows made whole; the folder then holds the tables alone."""
    from app.core.generation import batch, events

    monkeypatch.setattr(events, "PART_EVENTS", 50)
    monkeypatch.setattr(batch, "HELD_EVENTS", 0)
    out = tmp_path / "parts"
    assert main(["expect", "--data-dir", str(bronze["production"]), "--out", str(out)]) == 0
    names = ("silver/events", "silver/companies", "gold/events_per_company_window_type",
             "gold/deliveries_per_company_day", "gold/driver_day")
    for name in names:
        made_in_parts, made_whole = (pq.read_table(folder / f"{name}.parquet")
                                     for folder in (out, expected["production"]))
        assert made_in_parts.num_rows > 0 and made_in_parts.equals(made_whole), name
    event_ids = pq.read_table(out / "silver/events.parquet")["event_id"].to_pylist()
    assert event_ids == sorted(event_ids)  # each table in its key's order
    left = sorted(str(path.relative_to(out)) for path in out.rglob("*"))
    assert left == sorted(["expectations.json", "silver", "gold", *(f"{name}.parquet" for name in names)])


def test_expect_takes_a_range_of_windows(bronze, tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["expect", "--data-dir", str(bronze["production"]), "--from", "2026-11-25T07:00:00Z",
                 "--to", "2026-11-25T08:00:00Z", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["windows"] == {"companies": 1, "events": 4}
    batches = set(pq.read_table(out / "silver/events.parquet")["batch_id"].to_pylist())
    assert batches == {"20261125T070000Z", "20261125T071500Z", "20261125T073000Z", "20261125T074500Z"}


def _user_tables(expected_dir, root, fmt: str) -> None:
    """A user's silver and gold, written in ``fmt`` from the expected tables (equal by construction)."""
    for name in ("silver/events", "silver/companies", "gold/events_per_company_window_type",
                 "gold/deliveries_per_company_day", "gold/driver_day"):
        table = pq.read_table(expected_dir / f"{name}.parquet")
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet-folder":  # like Spark's output: a folder of part files
            target.mkdir()
            half = table.num_rows // 2
            pq.write_table(table.slice(0, half), target / "part-00000.parquet")
            pq.write_table(table.slice(half), target / "part-00001.parquet")
            (target / "_SUCCESS").write_text("")
        elif fmt == "csv":
            import pyarrow.csv as pa_csv

            pa_csv.write_csv(table.flatten(), target.with_suffix(".csv"))
        else:
            from deltalake import write_deltalake

            write_deltalake(str(target), table)


@pytest.mark.parametrize("fmt", ["parquet-folder", "csv", "delta"])
def test_verify_passes_on_equal_tables(expected, tmp_path, fmt, capsys):
    _user_tables(expected["defects"], tmp_path, fmt)
    code = main(["verify", "--expected", str(expected["defects"]), "--silver", str(tmp_path / "silver"),
                 "--gold", str(tmp_path / "gold")])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["equal"], report
    assert len(report["tables"]) == 5


def test_verify_catches_a_removed_an_extra_and_a_changed_row(expected, tmp_path, capsys):
    out = expected["defects"]
    events = pq.read_table(out / "silver/events.parquet")
    silver = tmp_path / "silver"
    silver.mkdir()
    pq.write_table(pq.read_table(out / "silver/companies.parquet"), silver / "companies.parquet")
    removed = events.slice(1)  # the first row is gone
    extra = pa.concat_tables([events, events.slice(0, 1).set_column(0, "event_id", pa.array(["not-an-event"]))])
    changed = events.to_pylist()
    changed[5]["event_type"] = "delivered" if changed[5]["event_type"] != "delivered" else "start_driving"
    changed = pa.Table.from_pylist(changed, schema=events.schema)
    for table, field in ((removed, "missing"), (extra, "extra"), (changed, "changed")):
        pq.write_table(table, silver / "events.parquet")
        assert main(["verify", "--expected", str(out), "--silver", str(silver)]) == 1
        report = json.loads(capsys.readouterr().out)["tables"]["silver/events"]
        assert report[field] == 1 and sum(report[k] for k in ("missing", "extra", "changed")) == 1, report
    assert report["examples"]["changed"][0]["column"] == "event_type"
    pq.write_table(pa.concat_tables([events, events.slice(3, 1)]), silver / "events.parquet")  # a key twice
    assert main(["verify", "--expected", str(out), "--silver", str(silver)]) == 1
    assert json.loads(capsys.readouterr().out)["tables"]["silver/events"]["extra"] == 1


def test_verify_refuses_bad_input_with_exit_2(expected, tmp_path, capsys):
    out = expected["defects"]
    assert main(["verify", "--expected", str(tmp_path / "nowhere"), "--silver", str(tmp_path)]) == 2
    assert "expectations.json" in capsys.readouterr().err
    silver = tmp_path / "silver"
    silver.mkdir()
    assert main(["verify", "--expected", str(out), "--silver", str(silver)]) == 2
    assert "no table 'events'" in capsys.readouterr().err
    pq.write_table(pq.read_table(out / "silver/events.parquet").drop_columns(["driver_id"]), silver / "events.parquet")
    pq.write_table(pq.read_table(out / "silver/companies.parquet"), silver / "companies.parquet")
    assert main(["verify", "--expected", str(out), "--silver", str(silver)]) == 2
    assert "no column driver_id" in capsys.readouterr().err
    (silver / "events.parquet").write_text("not parquet")
    assert main(["verify", "--expected", str(out), "--silver", str(silver)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_verify_reads_hive_folders_and_naive_times_and_compares_doubles_within_1e_9(expected, tmp_path, capsys):
    import pyarrow.compute as pc

    out = expected["defects"]
    events = pq.read_table(out / "silver/events.parquet").combine_chunks()
    lat, lon = (pc.struct_field(events["location"], name).combine_chunks() for name in ("lat", "lon"))
    nudged = pa.StructArray.from_arrays([pc.add(lat, 1e-12), lon], names=["lat", "lon"])
    naive = pc.cast(events["event_timestamp"], pa.timestamp("us"))  # Spark without a time zone: UTC
    mine = events.set_column(events.schema.get_field_index("location"), "location", nudged)
    mine = mine.set_column(mine.schema.get_field_index("event_timestamp"), "event_timestamp", naive)
    silver = tmp_path / "silver"
    pq.write_to_dataset(mine, silver / "events", partition_cols=["event_type"])  # event_type=…/ folders
    pq.write_table(pq.read_table(out / "silver/companies.parquet"), silver / "companies.parquet")
    assert main(["verify", "--expected", str(out), "--silver", str(silver)]) == 0, capsys.readouterr().out
    capsys.readouterr()

    ids = events["event_id"].combine_chunks()
    far = pc.if_else(pc.equal(ids, ids[7]), pc.add(lat, 1e-6), lat)
    mine = mine.set_column(mine.schema.get_field_index("location"), "location",
                           pa.StructArray.from_arrays([far, lon], names=["lat", "lon"]))
    mine = mine.set_column(mine.schema.get_field_index("driver_id"), "driver_id", pc.if_else(
        pc.equal(ids, ids[9]), None, events["driver_id"].combine_chunks()))
    (silver / "events").rename(tmp_path / "before")
    pq.write_table(mine, silver / "events.parquet")
    assert main(["verify", "--expected", str(out), "--silver", str(silver)]) == 1
    report = json.loads(capsys.readouterr().out)["tables"]["silver/events"]
    assert (report["missing"], report["extra"], report["changed"]) == (0, 0, 2)
    assert {(c["key"]["event_id"], c["column"]) for c in report["examples"]["changed"]} == {
        (ids[7].as_py(), "location.lat"), (ids[9].as_py(), "driver_id")}

    (silver / "events.parquet").unlink()
    import pyarrow.csv as pa_csv

    companies = pq.read_table(out / "silver/companies.parquet")
    text = companies.set_column(companies.schema.get_field_index("drivers_count"), "drivers_count",
                                pa.array(["many"] * companies.num_rows))
    pa_csv.write_csv(text, silver / "companies.csv")
    (silver / "companies.parquet").unlink()
    pq.write_table(events, silver / "events.parquet")
    assert main(["verify", "--expected", str(out), "--silver", str(silver)]) == 2
    assert "column drivers_count (string) cannot be read as INTEGER" in capsys.readouterr().err


def test_expect_refuses_an_out_that_is_not_a_folder_it_can_make(bronze, tmp_path, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    assert main(["expect", "--data-dir", str(bronze["production"]), "--out", str(a_file)]) == 2
    assert f"--out {a_file}: is a file, not a folder" in capsys.readouterr().err
    assert main(["expect", "--data-dir", str(bronze["production"]), "--out", str(a_file / "under")]) == 2
    assert f"--out {a_file / 'under'}: the folder cannot be made (Not a directory)" in capsys.readouterr().err
    assert a_file.read_text() == "mine"


def test_expect_removes_the_work_a_killed_run_left_and_no_other(bronze, tmp_path, capsys):
    import os
    import subprocess
    import sys

    out = tmp_path / "e"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = out / f".expect-{int(gone.stdout)}-k9"  # the pid of a process that has ended, as after kill -9
    (abandoned / "duckdb").mkdir(parents=True)
    (abandoned / "events.parquet").write_bytes(b"spilled")
    running = out / f".expect-{os.getpid()}-live"  # a run still working into the same folder
    running.mkdir()
    assert main(["expect", "--data-dir", str(bronze["production"]), "--out", str(out)]) == 0
    assert not abandoned.exists() and running.is_dir()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [running.name]

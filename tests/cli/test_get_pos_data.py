"""data/get_pos_data.py: the three local layouts, NLTK's zips (download mocked), md5 refusals."""
import importlib.util
import io
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "data" / "get_pos_data.py"
_spec = importlib.util.spec_from_file_location("get_pos_data", SCRIPT)
get_pos_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(get_pos_data)

NAMES = ("conll2000/train.txt", "conll2000/test.txt", "treebank_sample/wsj_0001-0199.pos")


def _nltk_zips(pos_tagged_dir):
    """conll2000.zip and treebank.zip as NLTK lays them out; the treebank sample cut into three files."""
    conll = io.BytesIO()
    with zipfile.ZipFile(conll, "w") as archive:
        for name in NAMES[:2]:
            archive.writestr(name, (pos_tagged_dir / name).read_bytes())
        archive.writestr("conll2000/README", "readme")
    joined = (pos_tagged_dir / NAMES[2]).read_bytes()
    cuts = [0, len(joined) // 3, 2 * len(joined) // 3, len(joined)]
    treebank = io.BytesIO()
    with zipfile.ZipFile(treebank, "w") as archive:
        for i in (2, 0, 1):   # stored out of order: the joiner sorts by number
            archive.writestr(f"treebank/tagged/wsj_{i * 99 + 1:04d}.pos", joined[cuts[i]:cuts[i + 1]])
        archive.writestr("treebank/combined/wsj_0001.mrg", "not tagged")
    return conll.getvalue(), treebank.getvalue()


def _check(out, pos_tagged_dir):
    for name in NAMES:
        assert (out / name).read_bytes() == (pos_tagged_dir / name).read_bytes()


def test_from_this_layout_then_nothing_to_do(pos_tagged_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert get_pos_data.main(["--from", str(pos_tagged_dir), "--out", str(out)]) == 0
    _check(out, pos_tagged_dir)
    assert capsys.readouterr().out.count("written, md5 ok") == 3
    assert get_pos_data.main(["--from", str(tmp_path / "nowhere_needed"), "--out", str(out)]) == 2  # not a dir
    assert get_pos_data.fetch(str(out), source_dir=None, log=lambda m: None) == []   # all present: no download


def test_download_of_nltk_zips(pos_tagged_dir, tmp_path):
    conll, treebank = _nltk_zips(pos_tagged_dir)
    served = {get_pos_data.URL.format(name="conll2000"): conll, get_pos_data.URL.format(name="treebank"): treebank}
    written = get_pos_data.fetch(str(tmp_path / "out"), fetch_url=served.__getitem__, log=lambda m: None)
    assert len(written) == 3
    _check(tmp_path / "out", pos_tagged_dir)


def test_from_zips_and_from_nltk_data_folder(pos_tagged_dir, tmp_path):
    conll, treebank = _nltk_zips(pos_tagged_dir)
    zips = tmp_path / "zips"
    zips.mkdir()
    (zips / "conll2000.zip").write_bytes(conll)
    (zips / "treebank.zip").write_bytes(treebank)
    assert get_pos_data.main(["--from", str(zips), "--out", str(tmp_path / "a")]) == 0
    _check(tmp_path / "a", pos_tagged_dir)
    nltk_data = tmp_path / "nltk_data" / "corpora"
    for blob in (conll, treebank):
        zipfile.ZipFile(io.BytesIO(blob)).extractall(nltk_data)
    assert get_pos_data.main(["--from", str(tmp_path / "nltk_data"), "--out", str(tmp_path / "b")]) == 0
    _check(tmp_path / "b", pos_tagged_dir)


def test_wrong_bytes_are_refused_and_nothing_written(pos_tagged_dir, tmp_path, capsys):
    src = tmp_path / "src"
    for name in NAMES:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((pos_tagged_dir / name).read_bytes())
    (src / NAMES[2]).write_bytes(b"changed")
    assert get_pos_data.main(["--from", str(src), "--out", str(tmp_path / "out")]) == 2
    assert "md5" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    assert get_pos_data.main(["--from", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "nltk_data" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "conll2000.zip").write_bytes(b"not a zip")
    (bad / "treebank.zip").write_bytes(b"not a zip")
    assert get_pos_data.main(["--from", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "not NLTK's" in capsys.readouterr().err

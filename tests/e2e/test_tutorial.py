"""The tutorial (docs/tutorial.py) runs top to bottom through the public API on the demo's trained model."""
import os
import runpy
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.py"


def test_the_tutorial_runs(demo_run, monkeypatch, capsys):
    out, _, _ = demo_run
    monkeypatch.setenv("SG_TUTORIAL_OUT", str(out))
    namespace = runpy.run_path(str(TUTORIAL), run_name="__main__")
    printed = capsys.readouterr().out
    assert "classes: ['overall', 'nouns'" in printed and "95% interval [" in printed
    assert (out / "tutorial_svs.png").read_bytes()[:4] == b"\x89PNG"
    # its profile is the pass's files: loading them back gives the same numbers
    profile = namespace["sg"].MemoryProfile.load(os.path.join(out, "tutorial_gradients"))
    assert profile.counts.tolist() == namespace["profile"].counts.tolist()
    comparison = namespace["comparison"]
    assert comparison.lo <= comparison.estimate <= comparison.hi

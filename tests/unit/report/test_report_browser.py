"""The demo's report.html in a real browser (headless Chromium): every image loads, nothing overflows sideways."""
import json
import os
import re
import shutil
import subprocess

import pytest

from state_gradients.report import report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# appended to a copy of the page: once everything has loaded, the page writes what it sees into an
# attribute of <body>, which --dump-dom prints
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const root = document.documentElement;
  document.body.setAttribute("data-probe", JSON.stringify({
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    scroll_width: root.scrollWidth, client_width: root.clientWidth}));
});
</script>"""


def _browser():
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and no Chromium: .ci/run installs Debian's chromium")
        pytest.skip("no Chromium on this machine (apt install chromium, or any Chrome) to render report.html")
    return found


def _run(browser, *args):
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    return subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=10000", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("width", [1280, 700])
def test_report_renders_with_every_image_and_no_sideways_overflow(demo_run, tmp_path, width):
    browser = _browser()
    out, _, _ = demo_run
    report.build_report(str(out), title="State-gradient report: the demo LSTM")
    page = tmp_path / "probed.html"
    page.write_text((out / "report.html").read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                    encoding="utf-8")
    result = _run(browser, f"--window-size={width},900", "--dump-dom", page.as_uri())
    match = re.search(r'data-probe="([^"]*)"', result.stdout)
    assert match, f"no probe in the page Chromium rendered (exit {result.returncode}): {result.stderr[-2000:]}"
    probe = json.loads(match.group(1).replace("&quot;", '"'))
    assert probe["images"] >= 2 and probe["broken"] == [], probe     # the demo: SV sums per class, the fits
    assert probe["scroll_width"] <= probe["client_width"], f"horizontal overflow at {width} px: {probe}"
    shot = tmp_path / f"report_{width}.png"
    _run(browser, f"--window-size={width},2400", f"--screenshot={shot}", (out / "report.html").as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"   # kept under the test's folder for a look

"""The report of a ``--quick`` demo, used as a person would: headless Chromium (Debian ``chromium`` +
``chromium-driver``), no console errors, choosing another phone / layer / view changes the map, and a
screenshot is saved under the pytest temp dir (its path is printed)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def quick_demo(tmp_path_factory) -> Path:
    """Shared ``--quick`` demo directory (see tests/test_report.py): first caller runs it, later ones resume."""
    from toposcope.demo import run_demo

    out = tmp_path_factory.getbasetemp() / "quick-demo"
    run_demo(out, quick=True, progress=False, log=lambda m: None)
    return out


@pytest.fixture
def driver(tmp_path):
    if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
        pytest.skip(f"needs Debian chromium and chromium-driver ({CHROMIUM}, {DRIVER}): apt-get install chromium "
                    f"chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1300,1100"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    d.set_page_load_timeout(60)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _errors(d) -> list[dict]:
    return [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]


def _canvas(d, model: str) -> dict:
    """The main map canvas of one run: its data attributes and pixels."""
    return d.execute_script(
        "var c = document.querySelector('#map-panels canvas[data-model=\"' + arguments[0] + '\"]');"
        "return c ? {phone: c.dataset.phone, layer: c.dataset.layer, view: c.dataset.view, w: c.width,"
        " h: c.height, px: c.toDataURL()} : null;", model)


def test_report_in_headless_chromium(driver, tmp_path_factory, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    out = quick_demo(tmp_path_factory)
    d = driver
    d.get((out / "report.html").resolve().as_uri())
    assert "toposcope" in d.title
    assert _errors(d) == []

    # Every section is there; the map panels show both runs side by side.
    for sec in ("summary", "topography", "maps", "optimal", "statistics"):
        assert d.find_element(By.ID, sec).is_displayed()
    # The statistics section states its findings (generated from stats.json) in a visible list.
    items = d.find_elements(By.CSS_SELECTOR, "#statistics ul.findings li")
    assert items and all(li.is_displayed() and "label null" in items[0].text for li in items)
    first = _canvas(d, "m0")
    base = _canvas(d, "m1")
    assert first and base and first["w"] > 0 and first["h"] > 0
    assert first["phone"] == base["phone"] and first["layer"] == base["layer"]

    # Another phone: the map changes (attributes and pixels), and the baseline follows.
    phone = Select(d.find_element(By.ID, "map-phone"))
    options = [o.get_attribute("value") for o in phone.options]
    assert len(options) > 5
    other = next(g for g in options if g != first["phone"])
    phone.select_by_value(other)
    after = _canvas(d, "m0")
    assert after["phone"] == other and after["px"] != first["px"]
    assert _canvas(d, "m1")["phone"] == other

    # Another layer: the map changes again (a layer of another grid size changes the canvas size too).
    layer = Select(d.find_element(By.ID, "map-layer"))
    layers = [o.get_attribute("value") for o in layer.options]
    assert len(layers) >= 2
    new_layer = next(l for l in layers if l != after["layer"])
    layer.select_by_value(new_layer)
    after2 = _canvas(d, "m0")
    assert after2["layer"] == new_layer and after2["px"] != after["px"]

    # Views: on grid / smoothed / interpolated draw different pictures of the same map.
    pics = {}
    for view in ("grid", "smooth", "interp"):
        d.find_element(By.CSS_SELECTOR, f"input[name=map-view][value={view}]").click()
        c = _canvas(d, "m0")
        assert c["view"] == view
        pics[view] = c["px"]
    assert len(set(pics.values())) == 3

    # Clicking a small multiple in the overview chooses that phone.
    figs = d.find_elements(By.CSS_SELECTOR, "#map-overview .multiples figure")
    assert len(figs) >= len(options)
    target = figs[3]
    label = target.find_element(By.TAG_NAME, "figcaption").text
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
    target.click()
    assert Select(d.find_element(By.ID, "map-phone")).first_selected_option.get_attribute("value") == label
    assert _canvas(d, "m0")["phone"] == label

    # Hovering a map reads out the value of a filter.
    from selenium.webdriver.common.action_chains import ActionChains

    cv = d.find_element(By.CSS_SELECTOR, "#map-panels canvas[data-model=m0]")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", cv)
    ActionChains(d).move_to_element(cv).perform()
    assert "filter" in d.find_element(By.ID, "hover").text

    # Audio players carry their sound inline.
    srcs = d.execute_script("return Array.from(document.querySelectorAll('audio')).map(a => a.src.slice(0, 22));")
    assert srcs and all(s == "data:audio/wav;base64," for s in srcs)

    assert _errors(d) == []
    # Screenshot of the maps section (look at it: tests/README of the report).
    d.execute_script("document.getElementById('maps').scrollIntoView();")
    time.sleep(0.2)
    shot = tmp_path / "report-maps.png"
    assert d.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")

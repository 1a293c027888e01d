"""The report in a real browser: the system's headless Chromium, driven by Playwright, opens report.html offline
and checks what a reader sees: every image loads, no script fails, hovering a point of the latent map shows that
row's thumbnail and id, the colour-by and projection controls redraw the map, and the map works inside an iframe
sandboxed the way MLflow's artifact viewer shows HTML (blob URL, `sandbox="allow-scripts"`).

Skips when there is no chromium binary, unless LATENT_REQUIRE_BROWSER=1 (CI sets it), which makes that a failure.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from latent.data.dataset import load_dataset_arrays
from latent.page import latent_map_section, render_html
from latent.report import map_payload

pytestmark = pytest.mark.e2e

MLFLOW_ORIGIN = "http://mlflow.test"  # served by Playwright's request routing: nothing leaves the machine

# The MLflow UI (3.x, ShowArtifactHtmlView) fetches the artifact, makes a blob URL of it and shows it like this.
MLFLOW_LIKE_VIEWER = """<!doctype html><html><body style="margin:0">
<script>
fetch("/report.html").then(function (r) { return r.text(); }).then(function (text) {
  var frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.style.cssText = "width:1260px;height:880px;border:0";
  frame.src = URL.createObjectURL(new Blob([text], {type: "text/html"}));
  document.body.appendChild(frame);
});
</script></body></html>"""

# The screen position of the point whose nearest neighbour on screen is farthest away, so that hovering it
# cannot pick another point; computed from Plotly's own axes (l2p) and the plot area's offsets.
ISOLATED_POINT_JS = """() => {
  const gd = document.getElementById("latent-map-plot");
  gd.scrollIntoView({block: "center"});
  const box = gd.getBoundingClientRect(), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const pts = [];
  gd.data.forEach(t => t.x.forEach((x, j) => pts.push({
    row: t.customdata[j], id: t.text[j],
    x: box.left + xa._offset + xa.l2p(x), y: box.top + ya._offset + ya.l2p(t.y[j])})));
  let best = null, bestGap = -1;
  for (const p of pts) {
    let gap = Infinity;
    for (const q of pts) if (q !== p) gap = Math.min(gap, Math.hypot(p.x - q.x, p.y - q.y));
    if (gap > bestGap) { bestGap = gap; best = p; }
  }
  return {...best, gap: bestGap};
}"""

MAP_READY_JS = "() => document.getElementById('latent-map-plot')?.dataset.ready === 'true'"


class Watched:
    """A page that records console errors, uncaught exceptions and every URL it requests."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def watched(browser):
    w = Watched(browser)
    yield w
    w.close()


def _payload(html_text: str) -> dict:
    found = re.search(r'<script type="application/json" id="latent-map-data">(.*?)</script>', html_text, re.S)
    assert found, "the report has no latent map data"
    return json.loads(found.group(1))


def _open_report(watched: Watched, html_path: str):
    page = watched.page
    page.goto(Path(html_path).resolve().as_uri())
    page.wait_for_function(MAP_READY_JS, timeout=30_000)
    return page


def _hover_isolated_point(page, mouse, offset=(0.0, 0.0)) -> dict:
    point = page.evaluate(ISOLATED_POINT_JS)
    assert point["gap"] > 3, "no point stands apart from its neighbours on screen"
    x, y = point["x"] + offset[0], point["y"] + offset[1]
    mouse.move(x - 25, y - 25)
    mouse.move(x, y, steps=4)
    return point


def test_report_opens_offline_with_every_image_loaded_and_no_errors(watched, library_run):
    page = _open_report(watched, library_run.report.html_path)
    images = page.evaluate(
        "() => [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}))"
    )
    assert len(images) >= 7  # six figures and the map's thumbnail
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    toc = page.evaluate("() => [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'))")
    sections = page.evaluate("() => [...document.querySelectorAll('section')].map(s => '#' + s.id)")
    assert toc == sections and "#latent-map" in toc
    shown = page.evaluate("() => document.getElementById('latent-map-plot').data.reduce((n, t) => n + t.x.length, 0)")
    assert shown == 1797
    assert page.locator("#latent-map-plot .scatterlayer .point").count() == 1797  # drawn, not only data
    toolbar = page.evaluate("() => [...document.querySelectorAll('.modebar-btn')].map(b => b.dataset.title)")
    assert toolbar == ["Zoom", "Pan", "Zoom in", "Zoom out", "Autoscale", "Reset axes"]  # no upload, no download
    assert watched.errors == []
    assert all(u.startswith(("file:", "data:")) for u in watched.requests), watched.requests


def test_hovering_a_point_shows_its_thumbnail_and_id(watched, library_run, tmp_path):
    html_text = Path(library_run.report.html_path).read_text()
    payload = _payload(html_text)
    page = _open_report(watched, library_run.report.html_path)
    point = _hover_isolated_point(page, page.mouse)
    assert point["id"] == payload["ids"][point["row"]]
    page.wait_for_function(
        "id => document.getElementById('latent-map-id').textContent === id", arg=point["id"], timeout=10_000
    )
    thumb = page.evaluate(
        "() => { const i = document.getElementById('latent-map-thumb');"
        " return {src: i.src, complete: i.complete, width: i.naturalWidth}; }"
    )
    assert thumb["src"] == "data:image/png;base64," + payload["thumbnails"][point["row"]]
    assert thumb["complete"] and thumb["width"] == 8
    # the thumbnail is this row's image from the dataset table (dark on light, as in the figures)
    ids, x, _ = load_dataset_arrays(library_run.preprocess.dataset_path)
    expected = 255 - np.rint(np.clip(x[list(ids).index(point["id"])], 0, 1) * 255).reshape(8, 8)
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(thumb["src"].split(",", 1)[1]))))
    np.testing.assert_array_equal(shown, expected)
    panel = page.locator("#latent-map-details").inner_text()
    assert "recon_error" in panel and "split" in panel
    assert page.locator(".hoverlayer .hovertext").count() == 1  # Plotly's own tooltip is up too
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    page.locator("#latent-map").screenshot(path=str(tmp_path / "latent-map.png"))
    print(f"screenshots: {shot} and {tmp_path / 'latent-map.png'}")
    assert shot.stat().st_size > 10_000
    assert watched.errors == []


def test_colour_by_and_projection_controls_redraw_the_map(watched, library_run):
    page = _open_report(watched, library_run.report.html_path)
    options = page.evaluate("() => [...document.querySelectorAll('#latent-map-color option')].map(o => o.text)")
    assert options == ["label", "split", "recon_error"]  # digits carry no factor columns
    traces = "() => document.getElementById('latent-map-plot').data"
    assert sorted(t["name"] for t in page.evaluate(traces)) == [str(d) for d in range(10)]
    assert page.locator("#latent-map-plot .legend .traces").count() == 10

    page.select_option("#latent-map-color", label="recon_error")
    page.wait_for_function("() => document.getElementById('latent-map-plot').data.length === 1")
    (trace,) = page.evaluate(traces)
    assert trace["marker"]["showscale"] and len(trace["marker"]["color"]) == 1797
    assert page.locator("#latent-map-plot .colorbar").count() == 1
    fills = page.evaluate(
        "() => new Set([...document.querySelectorAll('#latent-map-plot .point')].map(p => p.style.fill)).size"
    )
    assert fills > 50  # a continuous scale, not a handful of category colours

    page.select_option("#latent-map-color", label="split")
    page.wait_for_function("() => document.getElementById('latent-map-plot').data.length === 3")
    coords = pq.read_table(library_run.report.coordinates_path).to_pandas()
    counts = {t["name"]: len(t["x"]) for t in page.evaluate(traces)}
    assert counts == coords["split"].value_counts().to_dict()

    page.get_by_role("button", name="PCA").click()
    page.wait_for_function("() => document.getElementById('latent-map-plot')._fullLayout.xaxis.title.text === 'PC 1'")
    assert page.get_by_role("button", name="PCA").get_attribute("aria-pressed") == "true"
    by_id = coords.set_index("id")
    for t in page.evaluate(traces):
        np.testing.assert_allclose(t["x"], by_id.loc[t["text"], "pca_1"], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(t["y"], by_id.loc[t["text"], "pca_2"], rtol=1e-3, atol=1e-4)
    assert watched.errors == []


def test_map_works_in_an_iframe_sandboxed_like_mlflows_artifact_viewer(watched, library_run):
    html_text = Path(library_run.report.html_path).read_text()
    page = watched.page
    page.route(
        f"{MLFLOW_ORIGIN}/**",
        lambda route: route.fulfill(
            body=html_text if route.request.url.endswith("/report.html") else MLFLOW_LIKE_VIEWER,
            content_type="text/html",
        ),
    )
    page.goto(f"{MLFLOW_ORIGIN}/")
    iframe = page.wait_for_selector("iframe")
    frame = iframe.content_frame()
    frame.wait_for_function(MAP_READY_JS, timeout=30_000)
    assert frame.evaluate("() => window.origin") == "null"  # opaque origin: the sandbox is in force
    box = iframe.bounding_box()
    point = _hover_isolated_point(frame, page.mouse, offset=(box["x"], box["y"]))
    frame.wait_for_function(
        "id => document.getElementById('latent-map-id').textContent === id", arg=point["id"], timeout=10_000
    )
    assert frame.evaluate("() => document.getElementById('latent-map-thumb').naturalWidth") == 8
    assert watched.errors == []
    assert all(u.startswith((MLFLOW_ORIGIN, "blob:", "data:")) for u in watched.requests), watched.requests


def test_map_of_a_tabular_table_has_no_thumbnails_and_colours_by_factor_columns(watched, tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    ids = np.array([f"row-{i:04d}" for i in range(n)], dtype=object)
    payload = map_payload(
        ids,
        [
            ("t-SNE", rng.normal(size=(n, 2)), ("t-SNE 1", "t-SNE 2")),
            ("PCA", rng.normal(size=(n, 2)), ("PC 1", "PC 2")),
        ],
        {
            "label": np.where(np.arange(n) % 7 == 0, np.nan, np.arange(n) % 3),  # some rows unlabeled
            "split": np.array(["train", "val", "test"], dtype=object)[np.arange(n) % 3],
            "recon_error": rng.random(n),
            "shape_idx": np.arange(n) % 3,
            "pos_x_value": rng.random(n),
        },
        None,
        n,
    )
    path = tmp_path / "tabular.html"
    path.write_text(render_html("tabular", [latent_map_section(payload)]))
    page = _open_report(watched, str(path))
    assert page.evaluate("() => document.images.length") == 0
    options = page.evaluate("() => [...document.querySelectorAll('#latent-map-color option')].map(o => o.text)")
    assert options == ["label", "split", "recon_error", "shape_idx", "pos_x_value"]
    names = page.evaluate("() => document.getElementById('latent-map-plot').data.map(t => t.name)")
    assert names == ["0", "1", "2", "missing"]
    page.select_option("#latent-map-color", label="shape_idx")
    page.wait_for_function("() => document.getElementById('latent-map-plot').data.length === 3")
    page.select_option("#latent-map-color", label="pos_x_value")
    page.wait_for_function("() => document.getElementById('latent-map-plot').data.length === 1")
    point = _hover_isolated_point(page, page.mouse)
    page.wait_for_function(
        "id => document.getElementById('latent-map-id').textContent === id", arg=point["id"], timeout=10_000
    )
    assert "pos_x_value" in page.locator("#latent-map-details").inner_text()
    assert watched.errors == []

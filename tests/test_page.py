"""The report page from its templates: escaped titles, trusted section bodies, plotly.js only when a section needs
it, and the latent map's script (latent/templates/latent_map.js) inlined with its data."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest

from latent.page import Section, latent_map_section, render_html
from latent.report import map_payload

pytestmark = pytest.mark.unit


def test_titles_are_escaped_and_bodies_kept():
    page = render_html("a <b> & c", [Section("one", "x < y", "<p>body</p>"), Section("two", "2", "<i>2</i>")])
    assert "<title>a &lt;b&gt; &amp; c</title>" in page and "<h1>a &lt;b&gt; &amp; c</h1>" in page
    assert '<li><a href="#one">x &lt; y</a></li>' in page and "<h2>x &lt; y</h2>\n<p>body</p>\n</section>" in page
    assert page.index('id="one"') < page.index('id="two"') and page.endswith("</body></html>\n")
    assert "plotly-js" not in page


def test_section_ids_must_be_distinct():
    with pytest.raises(ValueError, match="distinct ids"):
        render_html("t", [Section("a", "A", ""), Section("a", "B", "")])


def test_the_map_section_inlines_its_script_and_data_and_the_page_embeds_plotly_once():
    ids = np.array(["r</script>1", "r2"])
    payload = map_payload(ids, [("t-SNE", np.zeros((2, 2)), ("1", "2"))], {"label": np.array([0, 1])}, None, 2)
    section = latent_map_section(payload)
    script = files("latent").joinpath("templates", "latent_map.js").read_text()
    assert script.strip() in section.body and section.needs_plotly
    assert "r\\u003c/script>1" in section.body and "r</script>1" not in section.body  # data cannot end its element
    assert '<img id="latent-map-thumb"' not in section.body  # no thumbnails given
    page = render_html("t", [section])
    assert page.count('<script id="plotly-js">') == 1 and "Plotly" in page

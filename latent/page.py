"""The report page: `Section`s under a table of contents, rendered through Jinja2 templates with autoescaping
(latent/templates/report.html.j2), and the interactive latent map (latent_map.html.j2 with latent_map.js inlined).

Everything is inline (images as data URIs, plotly.js embedded once), so the page needs no network and works in
MLflow's artifact viewer, which shows HTML artifacts in an iframe sandboxed with `allow-scripts` only.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

from jinja2 import Environment, PackageLoader
from markupsafe import Markup


@dataclass(frozen=True)
class Section:
    """One part of the report page: `id` is its anchor, `body` an HTML fragment built by the report (trusted:
    escape anything that comes from data). `needs_plotly` embeds plotly.js (once) in the page's head."""

    id: str
    title: str
    body: str
    needs_plotly: bool = False


@cache
def _templates() -> Environment:
    return Environment(loader=PackageLoader("latent", "templates"), autoescape=True, keep_trailing_newline=True)


def _script(name: str) -> Markup:
    """A script from latent/templates, safe inside a <script> element."""
    return Markup(_inline_script(files("latent").joinpath("templates", name).read_text(encoding="utf-8")))


def _inline_script(js: str) -> str:
    # inside a <script> element, "</script" would end it early; "<\/" means the same to JavaScript
    return js.replace("</script", "<\\/script")


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def img_html(path: Path, alt: str) -> str:
    """An <img> with the PNG at `path` embedded, so the page stays one file."""
    return f'<img alt="{html.escape(alt)}" src="{png_data_uri(Path(path).read_bytes())}">'


def png_section(section_id: str, title: str, path: Path, alt: str | None = None) -> Section:
    """A section showing one PNG figure."""
    return Section(section_id, title, img_html(path, alt or title))


def table_html(rows: dict[str, str]) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows.items())
        + "</table>"
    )


def _plotly_js() -> Markup:
    from plotly.offline import get_plotlyjs

    return Markup(_inline_script(get_plotlyjs()))


def render_html(title: str, sections: list[Section]) -> str:
    """The whole page: a title, a table of contents and the sections in order. Titles and ids are escaped by the
    template; section bodies are the report's own HTML."""
    ids = [s.id for s in sections]
    if len(set(ids)) != len(ids):
        raise ValueError(f"report sections need distinct ids, got {ids}")
    shown = [{"id": s.id, "title": s.title, "body": Markup(s.body)} for s in sections]
    plotly = _plotly_js() if any(s.needs_plotly for s in sections) else None
    return _templates().get_template("report.html.j2").render(title=title, sections=shown, plotly_js=plotly)


def latent_map_section(payload: dict) -> Section:
    """The interactive map: t-SNE / PCA toggle, colour by any column, pan and zoom, and a side panel showing
    the hovered (or clicked) point's thumbnail, id and values. `payload` is `latent.report.map_payload`'s."""
    # "<" escaped: the JSON (ids come from file names) can never end its <script> element
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    body = (
        _templates()
        .get_template("latent_map.html.j2")
        .render(
            projections=payload["projections"],
            thumbnails=bool(payload["thumbnails"]),  # the thumbnail's src is set by the script as the page loads
            data=Markup(data),
            script=_script("latent_map.js"),
        )
    )
    return Section("latent-map", "Latent map (interactive)", body.removesuffix("\n"), needs_plotly=True)

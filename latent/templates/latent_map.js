(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("latent-map-data").textContent);
  var gd = document.getElementById("latent-map-plot");
  var select = document.getElementById("latent-map-color");
  var buttons = document.querySelectorAll("#latent-map-projection button");
  var thumb = document.getElementById("latent-map-thumb");
  var idBox = document.getElementById("latent-map-id");
  var details = document.getElementById("latent-map-details");
  var status = document.getElementById("latent-map-status");
  var palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#c7c7c7", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31", "#843c39"];
  var projection = 0, colorBy = 0, pinned = null;
  // a document's start (text) or a SMILES (molecules) goes into the hover box too, wrapped, without markup
  var textColumn = data.columns.filter(function (c) { return c.kind === "text"; })[0];
  var hoverIds = !textColumn ? data.ids : data.ids.map(function (id, i) {
    var t = (textColumn.values[i] || "").replace(/</g, "\u2039").replace(/>/g, "\u203a");
    return id + "<br>" + (t.match(/.{1,60}(\s|$)|\S+/g) || []).join("<br>");
  });

  function valueOf(column, row) {
    if (column.kind === "text") return column.values[row] === null ? "" : column.values[row];
    if (column.kind === "categorical") return column.levels[column.codes[row]];
    var v = column.values[row];
    return v === null ? "missing" : String(v);
  }

  function show(row) {
    if (thumb && data.thumbnails) thumb.src = "data:image/png;base64," + data.thumbnails[row];
    idBox.textContent = data.ids[row];
    while (details.firstChild) details.removeChild(details.firstChild);
    data.columns.forEach(function (column) {
      var tr = details.insertRow(), th = document.createElement("th"), td = tr.insertCell();
      th.textContent = column.name;
      tr.insertBefore(th, td);
      td.textContent = valueOf(column, row);
    });
    idBox.dataset.row = String(row);
  }

  function pick(rows, values) {
    return rows.map(function (i) { return values[i]; });
  }

  function traces() {
    var p = data.projections[projection], column = data.columns[colorBy];
    var all = data.ids.map(function (_, i) { return i; });
    function trace(rows, name, marker, value) {
      return {type: "scatter", mode: "markers", name: name, x: pick(rows, p.x), y: pick(rows, p.y),
        customdata: rows, text: pick(rows, hoverIds), marker: marker,
        hovertemplate: "%{text}<br>" + column.name + ": " + value + "<extra></extra>"};
    }
    if (column.kind === "categorical") {
      var groups = column.levels.map(function () { return []; });
      column.codes.forEach(function (code, i) { groups[code].push(i); });
      return groups.map(function (rows, k) {
        var color = column.levels[k] === "missing" ? "#bbbbbb" : palette[k % palette.length];
        return trace(rows, column.levels[k], {size: 6, opacity: 0.8, color: color}, column.levels[k]);
      }).filter(function (t) { return t.x.length > 0; });
    }
    var present = all.filter(function (i) { return column.values[i] !== null; });
    var missing = all.filter(function (i) { return column.values[i] === null; });
    var out = [trace(present, column.name, {size: 6, opacity: 0.85, color: pick(present, column.values),
      colorscale: "Viridis", showscale: true, colorbar: {title: {text: column.name}}}, "%{marker.color:.4g}")];
    if (missing.length) out.push(trace(missing, "missing", {size: 6, opacity: 0.6, color: "#bbbbbb"}, "missing"));
    return out;
  }

  function draw() {
    var p = data.projections[projection], column = data.columns[colorBy];
    var layout = {
      uirevision: p.name, hovermode: "closest", dragmode: "pan", showlegend: column.kind === "categorical",
      legend: {title: {text: column.name}}, margin: {l: 55, r: 10, t: 36, b: 50},
      xaxis: {title: {text: p.axes[0]}, zeroline: false}, yaxis: {title: {text: p.axes[1]}, zeroline: false}
    };
    var config = {responsive: true, scrollZoom: true, displaylogo: false,
      modeBarButtonsToRemove: ["toImage", "sendChartToCloud", "select2d", "lasso2d"]};
    buttons.forEach(function (b, i) { b.setAttribute("aria-pressed", String(i === projection)); });
    return Plotly.react(gd, traces(), layout, config);
  }

  data.columns.forEach(function (column, i) {
    if (column.kind !== "text") select.add(new Option(column.name, String(i)));
  });
  select.addEventListener("change", function () { colorBy = Number(select.value); draw(); });
  buttons.forEach(function (b, i) { b.addEventListener("click", function () { projection = i; draw(); }); });
  show(0);
  draw().then(function () {
    gd.on("plotly_hover", function (e) { show(e.points[0].customdata); });
    gd.on("plotly_click", function (e) { pinned = e.points[0].customdata; show(pinned); });
    gd.on("plotly_unhover", function () { if (pinned !== null) show(pinned); });
    gd.dataset.ready = "true";
  });
  status.textContent = data.ids.length === data.total ? "all " + data.total + " rows" :
    data.ids.length + " of " + data.total + " rows (a seeded sample; coordinates.parquet has every row)";
})();

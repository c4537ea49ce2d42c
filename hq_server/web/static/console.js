/* The console's page script: charts from the server's options, live refresh, CSV downloads.
 *
 * Every number is also in a table the server rendered; this script only draws the
 * charts (Apache ECharts, served by the console), swaps in fresh figures every few
 * seconds while the page is open, and turns any table into a CSV download.
 */
(function () {
  "use strict";

  var lang = document.documentElement.lang || "en";
  var DASH = "\u2014";

  function formatter(fmt) {
    var nf;
    if (fmt === "percent") {
      nf = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 });
    } else if (fmt && fmt.indexOf("money:") === 0 && fmt.length > 6) {
      nf = new Intl.NumberFormat(lang, {
        style: "currency", currency: fmt.slice(6), maximumFractionDigits: 0
      });
    } else {
      nf = new Intl.NumberFormat(lang, { maximumFractionDigits: 2 });
    }
    return function (value) {
      if (Array.isArray(value)) { value = value[value.length - 1]; }
      if (value === null || value === undefined || value === "" || isNaN(value)) { return DASH; }
      return nf.format(value);
    };
  }

  function formatAxes(axes) {
    [].concat(axes || []).forEach(function (axis) {
      if (axis && axis._fmt) {
        axis.axisLabel = Object.assign({}, axis.axisLabel, { formatter: formatter(axis._fmt) });
        delete axis._fmt;
      }
    });
  }

  function prepare(option) {
    (option.series || []).forEach(function (series) {
      if (!series._fmt) { return; }
      var format = formatter(series._fmt);
      var tooltip = Object.assign({}, series.tooltip, { valueFormatter: format });
      if (series.type === "scatter") {
        tooltip.formatter = function (p) {
          return p.marker + p.name + ": " + format(p.value[1]) + " (n = " + p.value[0] + ")";
        };
      }
      series.tooltip = tooltip;
      delete series._fmt;
    });
    formatAxes(option.xAxis);
    formatAxes(option.yAxis);
    option.aria = { enabled: false };
    option.animation = false;
    return option;
  }

  function drawCharts(root) {
    if (typeof echarts === "undefined") { return; }
    root.querySelectorAll(".chart[data-option]").forEach(function (el) {
      var option;
      try {
        option = JSON.parse(el.getAttribute("data-option"));
      } catch (e) {
        return;
      }
      var chart = echarts.getInstanceByDom(el) ||
        echarts.init(el, null, { locale: lang.indexOf("zh") === 0 ? "ZH" : "EN" });
      chart.setOption(prepare(option), true);
    });
  }

  function disposeCharts(root) {
    if (typeof echarts === "undefined") { return; }
    root.querySelectorAll(".chart").forEach(function (el) {
      var chart = echarts.getInstanceByDom(el);
      if (chart) { chart.dispose(); }
    });
  }

  window.addEventListener("resize", function () {
    if (typeof echarts === "undefined") { return; }
    document.querySelectorAll(".chart").forEach(function (el) {
      var chart = echarts.getInstanceByDom(el);
      if (chart) { chart.resize(); }
    });
  });

  /* CSV: the raw value of a cell (data-value) when it has one, else its text. */
  function csvCell(cell) {
    var text;
    if (cell.hasAttribute("data-value")) {
      text = cell.getAttribute("data-value");
    } else if (cell.querySelector("form")) {
      text = "";
    } else {
      var copy = cell.cloneNode(true);
      copy.querySelectorAll("button, details").forEach(function (b) { b.remove(); });
      text = copy.textContent.replace(/\s+/g, " ").trim();
    }
    return /[",\n;]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function downloadCsv(button) {
    var table = document.getElementById(button.getAttribute("data-table"));
    if (!table) { return; }
    var lines = [];
    Array.prototype.forEach.call(table.rows, function (row) {
      lines.push(Array.prototype.map.call(row.cells, csvCell).join(","));
    });
    var blob = new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = (button.getAttribute("data-filename") || "table") + ".csv";
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.csv") : null;
    if (button) { downloadCsv(button); }
  });

  /* Live refresh: fetch this page again and swap every [data-live] section that changed,
     unless the reader is working in it (focus, typed text, an open details). */
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  var status = document.getElementById("live-status");
  var served = {};

  function busy(section) {
    if (section.contains(document.activeElement) && document.activeElement !== document.body) {
      return true;
    }
    if (section.querySelector("details[open]")) { return true; }
    return Array.prototype.some.call(section.querySelectorAll("input, textarea"), function (i) {
      return i.type !== "hidden" && i.value !== i.defaultValue;
    });
  }

  function say(key, time) {
    if (!status) { return; }
    status.textContent = (status.getAttribute("data-" + key) || "").replace("{time}", time || "");
  }

  /* Form tokens are signed afresh on every render: they are not a change of figures. */
  function figures(html) {
    return html.replace(/name="csrf_token" value="[^"]*"/g, "");
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-live]").forEach(function (section) {
      var fresh = doc.getElementById(section.id);
      if (!fresh || figures(fresh.innerHTML) === served[section.id] || busy(section)) { return; }
      disposeCharts(section);
      section.innerHTML = fresh.innerHTML;
      served[section.id] = figures(fresh.innerHTML);
      drawCharts(section);
    });
    say("updated", new Date().toLocaleTimeString(lang));
  }

  function poll() {
    if (document.hidden) { return setTimeout(poll, seconds * 1000); }
    fetch(window.location.href, {
      credentials: "same-origin", cache: "no-store", headers: { "X-Console-Live": "1" }
    }).then(function (response) {
      if (response.redirected && /\/console\/login/.test(response.url)) {
        say("stopped");
        return null;
      }
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.text().then(function (html) {
        swap(html);
        setTimeout(poll, seconds * 1000);
      });
    }).catch(function () {
      say("failed");
      setTimeout(poll, seconds * 4000);
    });
  }

  document.querySelectorAll("[data-live]").forEach(function (section) {
    served[section.id] = figures(section.innerHTML);
  });
  drawCharts(document);
  if (seconds > 0 && window.fetch && window.DOMParser) {
    setTimeout(poll, seconds * 1000);
  }
}());

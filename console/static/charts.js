// Draw the dashboard's charts from the page's JSON with the locally served Apache ECharts.
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof echarts === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var days = data.days.map(function (d) { return d.day.slice(5); });
  var col = function (name) { return data.days.map(function (d) { return d[name]; }); };
  var pct = function (part, whole) {
    return data.days.map(function (d) {
      return d[whole] ? Math.round(1000 * d[part] / d[whole]) / 10 : null;
    });
  };
  var grid = { left: 44, right: 16, top: 36, bottom: 28 };
  var axis = { type: "category", data: days };
  var bars = function (pairs, name) {
    return {
      grid: { left: 110, right: 24, top: 16, bottom: 24 },
      tooltip: {},
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", inverse: true, data: pairs.map(function (p) { return p[0]; }) },
      series: [{ type: "bar", name: name, data: pairs.map(function (p) { return p[1]; }),
                 itemStyle: { color: "#b5651d" } }]
    };
  };
  var options = {
    daily: {
      grid: grid, tooltip: { trigger: "axis" }, legend: { top: 0 }, xAxis: axis,
      yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: "活跃成员", type: "line", smooth: true, data: col("active_members") },
        { name: "打卡", type: "line", smooth: true, data: col("checkins") }
      ]
    },
    fallback: {
      grid: grid, tooltip: { trigger: "axis", valueFormatter: function (v) { return v == null ? "—" : v + "%"; } },
      xAxis: axis, yAxis: { type: "value", axisLabel: { formatter: "{value}%" } },
      series: [{ name: "没答上", type: "line", data: pct("fallbacks", "turns"), connectNulls: true,
                 itemStyle: { color: "#c62828" } }]
    },
    funnel: bars([["领券", data.kpis.claims], ["核销", data.kpis.redeemed]], "张"),
    streaks: {
      grid: grid, tooltip: {},
      xAxis: { type: "category", data: data.streaks.map(function (s) { return s[0] + " 天"; }) },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ type: "bar", name: "打卡次数", data: data.streaks.map(function (s) { return s[1]; }),
                 itemStyle: { color: "#b5651d" } }]
    },
    intents: bars(data.top_intents.slice(0, 10), "次"),
    members: {
      grid: grid, tooltip: { trigger: "axis" }, legend: { top: 0 }, xAxis: axis,
      yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: "入群", type: "bar", data: col("joins"), itemStyle: { color: "#1a7f37" } },
        { name: "退群", type: "bar", data: col("leaves"), itemStyle: { color: "#c62828" } }
      ]
    }
  };
  var charts = [];
  document.querySelectorAll(".chart[data-chart]").forEach(function (el) {
    var option = options[el.getAttribute("data-chart")];
    if (!option) { return; }
    var chart = echarts.init(el, null, { renderer: "canvas" });
    option.animation = false;  // numbers, not a show: drawn at once, on a phone too
    chart.setOption(option);
    charts.push(chart);
    el.setAttribute("data-drawn", "1");
  });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
}());

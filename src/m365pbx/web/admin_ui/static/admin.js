// Refreshes every element with data-refresh="URL" every data-every seconds (the lights).
// A signed-out session answers with the sign-in page: then the whole page goes there.
(function () {
  "use strict";
  function refresh(element) {
    fetch(element.dataset.refresh, { credentials: "same-origin", redirect: "follow" })
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/admin/login") !== -1) {
          window.location.assign("/admin/login");
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) { element.innerHTML = html; }
      })
      .catch(function () { /* the next round tries again */ });
  }
  document.querySelectorAll("[data-refresh]").forEach(function (element) {
    var seconds = Number(element.dataset.every || "5");
    window.setInterval(function () { refresh(element); }, seconds * 1000);
  });
})();
// The live view: rows from a WebSocket, written with textContent only (never as HTML).
(function () {
  "use strict";
  var table = document.getElementById("live");
  if (!table) { return; }
  var state = document.getElementById("live-state");
  var body = table.querySelector("tbody");
  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text || "—";
    row.appendChild(td);
  }
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + table.dataset.socket);
    socket.onopen = function () { state.textContent = "connected"; };
    socket.onmessage = function (event) {
      var change = JSON.parse(event.data);
      var row = document.createElement("tr");
      cell(row, change.at);
      cell(row, change.name);
      cell(row, change.connection);
      cell(row, change.teams);
      cell(row, change.pbx + (change.note ? " \u201c" + change.note + "\u201d" : ""));
      cell(row, change.line);
      body.insertBefore(row, body.firstChild);
      while (body.rows.length > 200) { body.deleteRow(body.rows.length - 1); }
    };
    socket.onclose = function () {
      state.textContent = "disconnected; trying again in 5 s";
      window.setTimeout(connect, 5000);
    };
  }
  connect();
})();

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

// Live updates of the pending approvals page: cards appear and disappear without a reload.
// The page works without this script (reload to refresh); it only talks to its own origin.
(function () {
  "use strict";
  var box = document.getElementById("pending");
  var badge = document.getElementById("live");
  if (!box || !window.EventSource) return;
  var source = new EventSource("/dashboard/events");
  source.addEventListener("pending", function (event) {
    var data = JSON.parse(event.data);
    var keep = {};
    data.ids.forEach(function (id) { keep[id] = true; });
    box.querySelectorAll("[data-request]").forEach(function (card) {
      if (!keep[card.getAttribute("data-request")]) card.remove();
    });
    data.ids.forEach(function (id) {
      if (box.querySelector("[data-request='" + CSS.escape(id) + "']")) return;
      var holder = document.createElement("div");
      holder.innerHTML = data.cards[id];  // rendered and escaped by the server
      if (holder.firstElementChild) box.appendChild(holder.firstElementChild);
    });
    var empty = document.getElementById("nothing");
    if (empty) empty.hidden = data.ids.length > 0;
    if (badge) badge.textContent = "live";
  });
  source.onerror = function () { if (badge) badge.textContent = "reconnecting"; };
})();

/* Stackyard chat widget: put a chat bubble for one app on any page.
 *
 *   <script src="https://stackyard.example/widget.js" data-app="support" data-key="sy_…" async></script>
 *
 * data-key must be a key made for this app alone (POST /api/v1/keys with "app"): it is visible to every visitor.
 * The chat itself runs in an iframe served by Stackyard (/widget/<app>), which only the origins the operator
 * lists in STACKYARD_WIDGET_ORIGINS may embed. Optional: data-title, data-open="true". */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var app = script.getAttribute("data-app") || "";
  var key = script.getAttribute("data-key") || "";
  var title = script.getAttribute("data-title") || "Chat";
  var base = new URL(script.src, document.baseURI).origin;
  var frame = document.createElement("iframe");
  frame.src = base + "/widget/" + encodeURIComponent(app) + "#key=" + encodeURIComponent(key);
  frame.title = title;
  frame.id = "stackyard-widget-frame";
  frame.setAttribute("allow", "clipboard-write");
  frame.style.cssText = "position:fixed;right:20px;bottom:88px;width:370px;height:520px;max-height:calc(100vh - 110px);" +
    "max-width:calc(100vw - 40px);border:1px solid #d0d7de;border-radius:12px;box-shadow:0 8px 28px rgba(0,0,0,.18);" +
    "background:#fff;z-index:2147483646;display:none";
  var button = document.createElement("button");
  button.type = "button";
  button.id = "stackyard-widget-button";
  button.setAttribute("aria-label", title);
  button.textContent = "\uD83D\uDCAC";
  button.style.cssText = "position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:none;" +
    "background:#2563eb;color:#fff;font-size:26px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483647";
  button.addEventListener("click", function () {
    frame.style.display = frame.style.display === "none" ? "block" : "none";
  });
  function mount() {
    document.body.appendChild(frame);
    document.body.appendChild(button);
    if (script.getAttribute("data-open") === "true") { frame.style.display = "block"; }
  }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();

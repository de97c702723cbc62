/* The chat inside the widget's iframe (/widget/<app>): same-origin calls to the app's OpenAI-compatible route,
 * streamed; the conversation id and an opaque visitor id are kept in this origin's localStorage, so the
 * conversation survives reloads and is this visitor's only; replies show their sources and thumbs up/down. */
(function () {
  "use strict";
  var app = document.body.getAttribute("data-app");
  var key = new URLSearchParams(location.hash.slice(1)).get("key") || "";
  var log = document.getElementById("log");
  var form = document.getElementById("ask");
  var input = document.getElementById("message");
  var status = document.getElementById("status");
  var conversationKey = "stackyard-conversation:" + app;

  function visitor() {
    var id = localStorage.getItem("stackyard-visitor");
    if (!/^[0-9a-f]{32}$/.test(id || "")) {
      var bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      id = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
      localStorage.setItem("stackyard-visitor", id);
    }
    return id;
  }

  function headers(extra) {
    var h = {"Authorization": "Bearer " + key, "X-Stackyard-Visitor": visitor(), "X-Stackyard-Widget": "1"};
    for (var name in extra || {}) { h[name] = extra[name]; }
    return h;
  }

  function bubble(role, text) {
    var item = document.createElement("div");
    item.className = "turn " + role;
    var body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    item.appendChild(body);
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  function finish(item, messageId, sources, rating) {
    if (sources && sources.length) {
      var list = document.createElement("ol");
      list.className = "sources";
      sources.slice(0, 5).forEach(function (doc) {
        var entry = document.createElement("li");
        var meta = doc.meta || {};
        var name = meta.file_path || meta.file_name || doc.file || (doc.id || "").slice(0, 12);
        entry.textContent = name + " — " + String(doc.content || "").slice(0, 160);
        list.appendChild(entry);
      });
      item.appendChild(list);
    }
    if (!messageId) { return; }
    var bar = document.createElement("div");
    bar.className = "feedback";
    [["up", "\uD83D\uDC4D", "Helpful"], ["down", "\uD83D\uDC4E", "Not helpful"]].forEach(function (choice) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = choice[1];
      button.setAttribute("aria-label", choice[2]);
      if (rating === choice[0]) { button.className = "chosen"; }
      button.addEventListener("click", function () {
        fetch("/api/v1/apps/" + encodeURIComponent(app) + "/messages/" + encodeURIComponent(messageId) + "/feedback", {
          method: "POST", headers: headers({"Content-Type": "application/json"}),
          body: JSON.stringify({rating: choice[0]})
        }).then(function (response) {
          if (response.ok) {
            bar.querySelectorAll("button").forEach(function (b) { b.className = ""; });
            button.className = "chosen";
          }
        });
      });
      bar.appendChild(button);
    });
    item.appendChild(bar);
  }

  function problem(response) {
    return response.json().then(function (body) {
      return (body.error && body.error.message) || body.detail || ("HTTP " + response.status);
    }, function () { return "HTTP " + response.status; });
  }

  function restore() {
    var conversation = localStorage.getItem(conversationKey);
    if (!conversation) { return; }
    fetch("/api/v1/apps/" + encodeURIComponent(app) + "/conversations/" + encodeURIComponent(conversation),
          {headers: headers()}).then(function (response) {
      if (response.status === 404) { localStorage.removeItem(conversationKey); return null; }
      return response.ok ? response.json() : null;
    }).then(function (thread) {
      (thread ? thread.exchanges : []).forEach(function (exchange) {
        bubble("user", exchange.message);
        var item = bubble("assistant", exchange.reply || exchange.error || "");
        finish(item, exchange.id, exchange.sources, exchange.rating);
      });
    });
  }

  function send(text) {
    bubble("user", text);
    var item = bubble("assistant", "");
    var body = item.querySelector(".text");
    var conversation = localStorage.getItem(conversationKey);
    var extra = {"Content-Type": "application/json"};
    if (conversation) { extra["X-Conversation-Id"] = conversation; }
    status.textContent = "…";
    return fetch("/v1/chat/completions", {
      method: "POST", headers: headers(extra),
      body: JSON.stringify({model: app, stream: true, messages: [{role: "user", content: text}]})
    }).then(function (response) {
      if (!response.ok) { return problem(response).then(function (message) { throw new Error(message); }); }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var pending = "";
      var last = null;
      function read() {
        return reader.read().then(function (part) {
          pending += decoder.decode(part.value || new Uint8Array(), {stream: !part.done});
          var events = pending.split("\n\n");
          pending = part.done ? "" : events.pop();
          events.forEach(function (event) {
            var data = event.replace(/^data: /, "").trim();
            if (!data || data === "[DONE]") { return; }
            var chunk = JSON.parse(data);
            if (chunk.error) { throw new Error(chunk.error.message); }
            var delta = (chunk.choices && chunk.choices[0] && chunk.choices[0].delta) || {};
            if (delta.content) { body.textContent += delta.content; log.scrollTop = log.scrollHeight; }
            if (chunk.conversation_id) { last = chunk; }
          });
          if (!part.done) { return read(); }
          if (last) {
            localStorage.setItem(conversationKey, last.conversation_id);
            finish(item, last.message_id, last.sources);
          }
        });
      }
      return read();
    }).catch(function (error) {
      body.textContent += (body.textContent ? "\n\n" : "") + "\u26A0\uFE0F " + error.message;
      item.className += " failed";
    }).then(function () { status.textContent = ""; });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    input.value = "";
    input.disabled = true;
    send(text).then(function () { input.disabled = false; input.focus(); });
  });
  document.getElementById("new").addEventListener("click", function () {
    localStorage.removeItem(conversationKey);
    log.textContent = "";
  });
  restore();
})();

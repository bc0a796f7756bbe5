// Vigil console: keeps a [data-poll] section live by polling its JSON endpoint
// every 2 s, counts down to due times each second, and gives a visual and sound
// cue when a new alert appears. No dependencies, no build step.
(function () {
  "use strict";
  var root = document.querySelector("[data-poll]");
  if (!root) { return; }
  var url = root.getAttribute("data-poll");
  var version = root.getAttribute("data-version") || "";
  var offset = Number(root.getAttribute("data-now") || Date.now()) - Date.now();
  var reminder = Number(root.getAttribute("data-reminder") || 0);
  var known = words(root.getAttribute("data-alerts"));
  var status = document.getElementById("live-status");
  var banner = document.getElementById("new-alert");
  var soundBtn = document.getElementById("sound");
  var audio = null, soundOn = false, failures = 0;

  function words(s) { var o = {}; (s || "").split(" ").forEach(function (w) { if (w) { o[w] = true; } }); return o; }

  // span writes a duration as the server does; up rounds minutes up (time left).
  function span(ms, up) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (up && s >= 60 && s % 60 !== 0) { s = (Math.floor(s / 60) + 1) * 60; }
    if (s < 60) { return s + " s"; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + " min"; }
    var h = Math.floor(m / 60), r = m % 60;
    return h + " h " + (r < 10 ? "0" : "") + r + " min";
  }

  // tick rewrites the countdowns and colours from the server's clock.
  function tick() {
    var now = Date.now() + offset;
    root.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Number(el.getAttribute("data-due")), left = due - now;
      var card = el.closest(".visit"), badge = card && card.querySelector(".badge");
      var cls = "", label = "Out", text = "due in " + span(left, true);
      if (el.getAttribute("data-state") === "overdue") { cls = "red"; label = "Overdue"; text = span(-left) + " overdue"; }
      else if (left <= 0) { cls = "red"; label = "Late"; text = span(-left) + " late"; }
      else if (left <= reminder) { cls = "amber"; label = "Due soon"; }
      el.textContent = text;
      if (card) { card.classList.toggle("red", cls === "red"); card.classList.toggle("amber", cls === "amber"); }
      if (badge) { badge.textContent = label; }
    });
    root.querySelectorAll("[data-since]").forEach(function (el) {
      var since = now - Number(el.getAttribute("data-since"));
      el.textContent = el.getAttribute("data-label") === "overdue" ? span(since) + " overdue" : "raised " + span(since) + " ago";
    });
  }

  // swap replaces the live section, keeping what the person was typing, which
  // sections were open and where the focus was.
  function swap(html) {
    var values = {}, open = {}, focus = document.activeElement && document.activeElement.id;
    root.querySelectorAll("input, select, textarea").forEach(function (el) {
      if (el.id && el.type !== "hidden") { values[el.id] = el.value; }
    });
    root.querySelectorAll("details[open]").forEach(function (d) { if (d.id) { open[d.id] = true; } });
    root.innerHTML = html;
    Object.keys(values).forEach(function (id) { var el = document.getElementById(id); if (el && root.contains(el)) { el.value = values[id]; } });
    Object.keys(open).forEach(function (id) { var d = document.getElementById(id); if (d) { d.open = true; } });
    if (focus) { var f = document.getElementById(focus); if (f && root.contains(f)) { f.focus(); } }
  }

  function beep() {
    if (!soundOn || !audio) { return; }
    try {
      [0, 0.35, 0.7].forEach(function (at) {
        var o = audio.createOscillator(), g = audio.createGain(), t = audio.currentTime + at;
        o.type = "square"; o.frequency.value = 880;
        g.gain.setValueAtTime(0.0001, t); g.gain.exponentialRampToValueAtTime(0.25, t + 0.02);
        g.gain.exponentialRampToValueAtTime(0.0001, t + 0.25);
        o.connect(g); g.connect(audio.destination); o.start(t); o.stop(t + 0.3);
      });
    } catch (e) { /* no sound: the banner still shows */ }
  }

  function cue() {
    document.body.classList.remove("flashing");
    void document.body.offsetWidth; // restart the animation
    document.body.classList.add("flashing");
    if (banner) { banner.hidden = false; }
    if (document.title.indexOf("(!) ") !== 0) { document.title = "(!) " + document.title; }
    beep();
  }

  function calm() {
    if (banner) { banner.hidden = true; }
    document.title = document.title.replace(/^\(!\) /, "");
  }
  document.addEventListener("click", calm);
  document.addEventListener("keydown", calm);

  if (soundBtn) {
    soundBtn.addEventListener("click", function (e) {
      e.stopPropagation();
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) { soundBtn.textContent = "This browser cannot play the alert sound"; return; }
      if (!audio) { audio = new Ctx(); }
      soundOn = !soundOn;
      if (soundOn) { audio.resume(); beep(); }
      soundBtn.setAttribute("aria-pressed", soundOn ? "true" : "false");
      soundBtn.textContent = soundOn ? "Turn alert sound off" : "Turn alert sound on";
    });
  }

  function say(text, stale) {
    if (!status) { return; }
    status.textContent = text;
    status.parentNode.classList.toggle("stale", !!stale);
  }

  function poll() {
    var req = new XMLHttpRequest();
    req.open("GET", url, true);
    req.setRequestHeader("Accept", "application/json");
    req.timeout = 10000;
    req.onload = function () {
      if (req.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
      if (req.status !== 200) { fail(); return; }
      var s;
      try { s = JSON.parse(req.responseText); } catch (e) { fail(); return; }
      failures = 0;
      offset = s.now - Date.now();
      if (s.version !== version) { swap(s.html); version = s.version; root.setAttribute("data-version", version); }
      var fresh = false, next = {};
      (s.alerts || []).forEach(function (id) { next[id] = true; if (!known[id]) { fresh = true; } });
      known = next;
      if (fresh) { cue(); }
      tick();
      say("Live. Last update " + new Date().toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }) + ".", false);
      setTimeout(poll, 2000);
    };
    req.onerror = req.ontimeout = fail;
    req.send();
  }

  function fail() {
    failures++;
    if (failures >= 2) { say("Not updating: Vigil cannot be reached. Retrying…", true); }
    setTimeout(poll, 2000);
  }

  tick();
  setInterval(tick, 1000);
  setTimeout(poll, 2000);
}());

/*
 * kefu chat widget. One tag on any page adds the chat bubble:
 *
 *   <script src="https://…/widget/kefu-widget.js" data-ws="wss://…/chat"
 *           data-tenant="t_…" data-key="wk_…" defer></script>
 *
 * Optional: data-lang="zh|en" (default: the page's <html lang>), data-title, data-color; for a
 * logged-in user of the site, data-user-id and data-user-hash (hex HMAC-SHA256 of the id with the
 * tenant's identity secret, computed by the site's server).
 * Plain JavaScript in a shadow root: no framework, no build step, no styles leak either way.
 * Speaks wire protocol v1 (docs/protocol.md).
 */
(function () {
  "use strict";
  if (window.__kefuWidget) return; // the tag was added twice
  var script = document.currentScript || document.querySelector('script[src*="kefu-widget"]');
  var data = (script && script.dataset) || {};
  if (!data.ws || !data.tenant || !data.key) {
    console.warn("kefu widget: data-ws, data-tenant and data-key are required on the script tag");
    return;
  }
  window.__kefuWidget = true;

  var pageLanguage = data.lang || document.documentElement.lang || navigator.language || "en";
  var lang = pageLanguage.toLowerCase().indexOf("zh") === 0 ? "zh" : "en";
  var TEXT = {
    en: {
      title: "Customer service",
      bot: "Assistant · answers from our help centre",
      queued: "Waiting for a person…",
      assigned: "{name} · customer service",
      resolved: "Resolved · the assistant answers new questions",
      placeholder: "Type your question…",
      send: "Send",
      human: "Talk to a human",
      sources: "Sources",
      typing: "{name} is typing…",
      reconnecting: "Reconnecting…",
      refused: "This chat is not set up for this page (its widget key or this site's address was refused), so messages cannot be sent. Please contact the site by other means.",
      queuedNotice: "Connecting you with a member of our team. Someone will reply here shortly.",
      nobodyNotice: "No one from our team was available. You can leave your contact details.",
      read: "Read",
      helpful: "Helpful",
      notHelpful: "Not helpful",
      thanks: "Thanks for the feedback",
      joined: "{name} joined the chat",
      open: "Chat with us",
      close: "Close chat",
      earlier: "Show earlier messages",
      greeting: "Hi! Ask me about orders, shipping, returns or payment. A person can take over any time.",
      failed: "Not sent: {message}",
      agent: "Agent",
      cut: "This answer was interrupted.",
      unavailable: "The assistant could not answer just now. Please try again, or talk to a person.",
      retry: "Ask again",
      leaveTitle: "Leave your contact details",
      leaveName: "Your name (optional)",
      leaveContact: "E-mail or phone",
      leaveText: "Your message (optional)",
      leaveSend: "Send",
    },
    zh: {
      title: "在线客服",
      bot: "智能助手 · 基于帮助中心回答",
      queued: "正在等待人工客服…",
      assigned: "{name} · 人工客服",
      resolved: "已解决 · 新问题由智能助手解答",
      placeholder: "请输入您的问题…",
      send: "发送",
      human: "转人工",
      sources: "参考来源",
      typing: "{name} 正在输入…",
      reconnecting: "正在重新连接…",
      refused: "本页面的客服组件配置有误（组件密钥或网站地址未被接受），消息无法发送。请通过其他方式联系本网站。",
      queuedNotice: "正在为您转接人工客服，请稍候，客服会在这里回复您。",
      nobodyNotice: "当时没有客服在线，您可以留下联系方式。",
      read: "已读",
      helpful: "有帮助",
      notHelpful: "没帮助",
      thanks: "感谢您的反馈",
      joined: "{name} 已加入会话",
      open: "联系客服",
      close: "关闭",
      earlier: "查看更早的消息",
      greeting: "您好！订单、配送、退换货、付款等问题都可以问我，也可以随时转人工客服。",
      failed: "发送失败：{message}",
      agent: "客服",
      cut: "回答中断了。",
      unavailable: "智能助手暂时无法回答，请重试，或转人工客服。",
      retry: "重新提问",
      leaveTitle: "留下您的联系方式",
      leaveName: "您的称呼（选填）",
      leaveContact: "邮箱或手机号",
      leaveText: "留言内容（选填）",
      leaveSend: "提交",
    },
  }[lang];
  function t(key, values) {
    return TEXT[key].replace(/\{(\w+)\}/g, function (_, name) {
      return values && values[name] != null ? values[name] : "";
    });
  }

  // Inline icons: emoji fonts are missing on many systems.
  var ICON = {
    person: '<svg viewBox="0 0 24 24" width="14" height="14" fill="currentColor" aria-hidden="true">' +
      '<path d="M12 12a4.5 4.5 0 1 0 0-9 4.5 4.5 0 0 0 0 9zm0 2c-4.4 0-8 2.2-8 5v2h16v-2c0-2.8-3.6-5-8-5z"/></svg>',
    up: '<svg viewBox="0 0 24 24" width="14" height="14" fill="currentColor" aria-hidden="true">' +
      '<path d="M2 21h4V9H2v12zm20-11c0-1.1-.9-2-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 1 6.6 7.6c-.4.4-.6.9-.6 1.4V19' +
      'c0 1.1.9 2 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z"/></svg>',
    down: '<svg viewBox="0 0 24 24" width="14" height="14" fill="currentColor" aria-hidden="true">' +
      '<path d="M22 3h-4v12h4V3zM2 14c0 1.1.9 2 2 2h6.3l-1 4.6v.3c0 .4.2.8.4 1.1l1.1 1L17.4 16.4c.4-.4.6-.9.6-1.4V5' +
      'c0-1.1-.9-2-2-2H7c-.8 0-1.5.5-1.8 1.2l-3 7.1c-.1.2-.2.5-.2.7v2z"/></svg>',
  };

  // --- persistence: the visitor id, the conversation, unsent messages (they survive a reload) ---
  var prefix = "kefu:" + data.tenant + ":";
  function load(name, fallback) {
    try {
      var raw = localStorage.getItem(prefix + name);
      return raw == null ? fallback : JSON.parse(raw);
    } catch (e) {
      return fallback;
    }
  }
  function save(name, value) {
    try {
      if (value == null) localStorage.removeItem(prefix + name);
      else localStorage.setItem(prefix + name, JSON.stringify(value));
    } catch (e) {
      /* private mode: the chat still works for this page */
    }
  }
  function randomId(length) {
    var bytes = new Uint8Array(length);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b % 36).toString(36); }).join("");
  }
  // Who this visitor is, as the server issued it: the id and its signed token (sent on every
  // reconnect; without a valid token the server starts a new visitor).
  var visitorId = load("visitor", null);
  var visitorToken = load("token", null);
  var conversationId = load("conversation", null);
  var outbox = load("outbox", []); // sendMessage frames not acked yet
  // Who owned the conversation when this page last knew (a person may write while the page is away).
  var storedStatus = conversationId ? load("status", "bot") : "bot";
  // The notices the server last sent for a handoff, in the tenant's words, shown again after a reload.
  var noticeTexts = load("notices", {});

  // --- DOM (in a shadow root) ---
  var host = document.createElement("div");
  host.id = "kefu-widget";
  var root = host.attachShadow({ mode: "open" });
  var color = data.color || "#2f6fed";
  root.innerHTML =
    "<style>" +
    ":host{all:initial}" +
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI','PingFang SC','Microsoft YaHei',sans-serif}" +
    ".bubble{position:fixed;right:20px;bottom:20px;width:58px;height:58px;border-radius:50%;border:0;background:" + color + ";" +
    "color:#fff;cursor:pointer;box-shadow:0 6px 20px rgba(0,0,0,.22);display:flex;align-items:center;justify-content:center;z-index:2147483000}" +
    ".bubble svg{width:28px;height:28px}" +
    ".badge{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;border-radius:11px;background:#e5484d;color:#fff;" +
    "font-size:12px;font-weight:600;display:flex;align-items:center;justify-content:center;padding:0 6px;border:2px solid #fff}" +
    ".panel{position:fixed;right:20px;bottom:90px;width:370px;height:min(600px,calc(100vh - 110px));background:#fff;border-radius:14px;" +
    "box-shadow:0 12px 40px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden;z-index:2147483000;color:#1d2330;font-size:14px}" +
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;height:100vh;border-radius:0}}" +
    "[hidden]{display:none!important}" +
    "header{background:" + color + ";color:#fff;padding:12px 14px;display:flex;align-items:center;gap:10px}" +
    "header .who{flex:1;min-width:0}.title{font-weight:600;font-size:15px}.subtitle{font-size:12px;opacity:.9;margin-top:2px}" +
    "header button{background:transparent;border:0;color:#fff;font-size:22px;cursor:pointer;line-height:1}" +
    ".conn{background:#fff4e5;color:#8a5300;font-size:12px;padding:4px 12px}" +
    ".conn.refused{background:#fff1f0;color:#a8071a;padding:8px 12px;line-height:1.4}" +
    ".log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:8px;background:#f6f7fb}" +
    ".msg{max-width:82%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;line-height:1.45;word-wrap:break-word}" +
    ".visitor{align-self:flex-end;background:" + color + ";color:#fff;border-bottom-right-radius:4px}" +
    ".visitor.pending{opacity:.6}.visitor.failed{background:#e5484d}" +
    ".bot,.agent{align-self:flex-start;background:#fff;border:1px solid #e3e6ee;border-bottom-left-radius:4px}" +
    ".agent{border-color:#c9d8ff;background:#eef3ff}" +
    ".who-label{font-size:11px;color:#5a6475;margin-bottom:3px;font-weight:600}" +
    ".streaming .text::after{content:'▍';animation:blink 1s steps(1) infinite}@keyframes blink{50%{opacity:0}}" +
    ".sources{margin:8px 0 0;padding:6px 0 0 18px;border-top:1px dashed #d6dae4;font-size:12px;white-space:normal}" +
    ".sources-label{font-size:11px;color:#5a6475;margin-top:6px}" +
    ".sources a{color:" + color + "}" +
    ".cite{font-size:.8em;vertical-align:super;line-height:0;text-decoration:none;color:" + color + "}" +
    ".rate{margin-top:6px;display:flex;gap:6px;align-items:center;font-size:12px;color:#5a6475}" +
    ".rate button{border:1px solid #d6dae4;background:#fff;color:#5a6475;border-radius:12px;padding:2px 8px;cursor:pointer;display:flex;align-items:center}" +
    ".rate button.chosen{color:" + color + "}" +
    ".rate button.chosen{background:#eef3ff;border-color:" + color + "}" +
    ".cut-line{margin-top:6px;font-size:12px;color:#8a5300;display:flex;gap:8px;align-items:center;flex-wrap:wrap}" +
    ".retry{border:1px solid " + color + ";color:" + color + ";background:#fff;border-radius:12px;padding:2px 10px;cursor:pointer;font-size:12px}" +
    ".notice.unavailable{color:#8a5300;background:#fff4e5}" +
    ".notice{align-self:center;text-align:center;font-size:12px;color:#5a6475;background:#eceff5;border-radius:10px;padding:5px 10px;max-width:90%}" +
    ".receipt{align-self:flex-end;font-size:11px;color:#5a6475;margin-top:-4px}" +
    ".earlier{align-self:center;border:0;background:transparent;color:" + color + ";cursor:pointer;font-size:12px}" +
    ".typing{font-size:12px;color:#5a6475;padding:2px 16px 6px;background:#f6f7fb}" +
    ".actions{padding:6px 10px 0;display:flex;justify-content:flex-start}" +
    ".human{border:1px solid " + color + ";color:" + color + ";background:#fff;border-radius:14px;padding:4px 12px;cursor:pointer;font-size:12px;display:flex;align-items:center;gap:5px}" +
    ".human:disabled{opacity:.5;cursor:default}" +
    ".leave{align-self:stretch;background:#fff;border:1px solid #e3e6ee;border-radius:12px;padding:10px;display:flex;flex-direction:column;gap:6px}" +
    ".leave .leave-title{font-size:13px;font-weight:600}" +
    ".leave input,.leave textarea{border:1px solid #cfd5e1;border-radius:8px;padding:6px 8px;font-size:13px;max-height:none}" +
    ".leave button{align-self:flex-end;border:0;border-radius:8px;background:" + color + ";color:#fff;padding:5px 14px;cursor:pointer;font-size:13px}" +
    "form.compose{display:flex;gap:8px;padding:10px;border-top:1px solid #e3e6ee}" +
    ".compose textarea{flex:1;resize:none;border:1px solid #cfd5e1;border-radius:10px;padding:8px 10px;font-size:14px;line-height:1.4;max-height:120px}" +
    "form.compose button{border:0;border-radius:10px;background:" + color + ";color:#fff;padding:0 14px;cursor:pointer;font-size:14px}" +
    "form button:disabled{opacity:.5;cursor:default}" +
    "</style>" +
    '<button class="bubble" type="button"><svg viewBox="0 0 24 24" fill="currentColor" aria-hidden="true">' +
    '<path d="M12 3C6.5 3 2 6.8 2 11.5c0 2.4 1.2 4.6 3.1 6.1L4 21l4.1-1.9c1.2.4 2.5.6 3.9.6 5.5 0 10-3.8 10-8.5S17.5 3 12 3z"/></svg>' +
    '<span class="badge" hidden>0</span></button>' +
    '<section class="panel" role="dialog" hidden>' +
    '<header><div class="who"><div class="title"></div><div class="subtitle"></div></div>' +
    '<button class="close" type="button">×</button></header>' +
    '<div class="conn" hidden></div>' +
    '<div class="log" aria-live="polite"></div>' +
    '<div class="typing" hidden></div>' +
    '<div class="actions"><button class="human" type="button"></button></div>' +
    '<form class="compose"><textarea rows="1"></textarea><button class="send" type="submit"></button></form>' +
    "</section>";
  function $(selector) {
    return root.querySelector(selector);
  }
  var bubble = $(".bubble"), badge = $(".badge"), panel = $(".panel"), log = $(".log");
  var subtitle = $(".subtitle"), conn = $(".conn"), typingLine = $(".typing"), humanButton = $(".human");
  var input = $(".compose textarea"), sendButton = $(".send");
  $(".title").textContent = data.title || TEXT.title;
  bubble.setAttribute("aria-label", TEXT.open);
  $(".close").setAttribute("aria-label", TEXT.close);
  humanButton.innerHTML = ICON.person;
  humanButton.appendChild(document.createTextNode(TEXT.human));
  input.placeholder = TEXT.placeholder;
  sendButton.textContent = TEXT.send;

  // --- state ---
  var socket = null, online = false, retries = 0, retryTimer = null;
  var refused = false; // the server refused this page's configuration: never retried on this page
  var deferred = []; // frames (other than messages, which wait in the outbox) sent once connected
  var status = storedStatus, agentName = null;
  var unread = 0;
  var rendered = {}; // message id -> element
  var pendingByClientId = {}; // clientMessageId -> element
  var answers = {}; // answer id -> {el, pieces, next}
  var newestId = null, oldestId = null, agentReadUntil = null, reportedRead = null;
  var typingTimer = null, lastTypingSent = 0, stopTypingTimer = null;

  function isOpen() {
    return !panel.hidden;
  }
  function setOpen(open) {
    panel.hidden = !open;
    try { sessionStorage.setItem(prefix + "open", open ? "1" : ""); } catch (e) { /* ignore */ }
    if (open) {
      ensureConnected();
      unread = 0;
      renderBadge();
      if (!log.children.length) notice(TEXT.greeting);
      input.focus();
      reportRead();
    }
  }
  function renderBadge() {
    badge.hidden = unread === 0;
    badge.textContent = unread > 99 ? "99+" : String(unread);
  }
  function countUnread() {
    if (!isOpen() || document.visibilityState !== "visible") {
      unread += 1;
      renderBadge();
    }
  }
  function renderStatus() {
    subtitle.textContent =
      status === "queued" ? TEXT.queued
      : status === "assigned" ? t("assigned", { name: agentName || TEXT.agent })
      : status === "resolved" ? TEXT.resolved
      : TEXT.bot;
    humanButton.hidden = status === "queued" || status === "assigned";
    humanButton.disabled = refused || ended;
  }
  function setStatus(value) {
    status = value;
    save("status", conversationId ? status : null);
  }
  function setOnline(value) {
    online = value;
    if (refused) {
      conn.hidden = false;
      conn.className = "conn refused";
      conn.textContent = TEXT.refused;
    } else {
      // "Reconnecting…" only while a reconnect is under way (an idle page simply stays disconnected).
      conn.hidden = value || !retryTimer;
      conn.textContent = TEXT.reconnecting;
    }
    sendButton.disabled = refused; // messages typed offline wait in the outbox
    input.disabled = refused;
    renderStatus();
  }
  function showRefused() {
    refused = true;
    Array.prototype.forEach.call(root.querySelectorAll(".msg.visitor.pending"), function (el) {
      el.classList.add("failed");
    });
    setOnline(false);
    if (window.console) {
      console.error("kefu widget: the server refused this widget's configuration: check data-tenant and data-key, " +
        "and that this page's origin (" + location.origin + ") is in the tenant's widget.allowedOrigins");
    }
  }
  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }
  function track(id) {
    if (!newestId || id > newestId) newestId = id;
    if (!oldestId || id < oldestId) oldestId = id;
  }

  // --- rendering ---
  function element(kind, text, label) {
    var el = document.createElement("div");
    el.className = "msg " + kind;
    if (label) {
      var who = document.createElement("div");
      who.className = "who-label";
      who.textContent = label;
      el.appendChild(who);
    }
    var body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    el.appendChild(body);
    return el;
  }
  function place(el, id, before) {
    if (before && before.parentNode === log) log.insertBefore(el, before);
    else log.appendChild(el);
    if (id) {
      el.dataset.id = id;
      rendered[id] = el;
      track(id);
    }
    scrollDown();
    return el;
  }
  function notice(text, id, before) {
    var el = document.createElement("div");
    el.className = "notice";
    el.textContent = text;
    return place(el, id, before);
  }
  // Nobody can chat now (or the wait is long): a small form for contact details and a message, sent
  // as leaveMessage and kept by the tenant as a ticket for its agents. One form at a time.
  function leaveForm() {
    var old = root.querySelector(".leave");
    if (old) old.remove();
    var form = document.createElement("form");
    form.className = "leave";
    var title = document.createElement("div");
    title.className = "leave-title";
    title.textContent = TEXT.leaveTitle;
    form.appendChild(title);
    var fields = {};
    [["name", "input", TEXT.leaveName, 100], ["contact", "input", TEXT.leaveContact, 200], ["text", "textarea", TEXT.leaveText, 2000]]
      .forEach(function (spec) {
        var field = document.createElement(spec[1]);
        field.name = spec[0];
        field.placeholder = spec[2];
        field.maxLength = spec[3];
        if (spec[0] === "contact") { field.required = true; field.minLength = 3; }
        if (spec[1] === "textarea") field.rows = 2;
        fields[spec[0]] = field;
        form.appendChild(field);
      });
    var submit = document.createElement("button");
    submit.type = "submit";
    submit.textContent = TEXT.leaveSend;
    form.appendChild(submit);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      event.stopPropagation();
      var frame = { action: "leaveMessage", contact: fields.contact.value.trim() };
      if (fields.name.value.trim()) frame.name = fields.name.value.trim();
      if (fields.text.value.trim()) frame.text = fields.text.value.trim();
      if (conversationId) frame.conversationId = conversationId;
      sendSoon(frame);
      submit.disabled = true;
    });
    return place(form, null);
  }
  function citations(el, list) {
    if (!list || !list.length) return;
    var label = document.createElement("div");
    label.className = "sources-label";
    label.textContent = TEXT.sources;
    var ol = document.createElement("ol");
    ol.className = "sources";
    list.forEach(function (c) {
      var li = document.createElement("li");
      if (c.url && /^https?:\/\//i.test(c.url)) {
        var a = document.createElement("a");
        a.href = c.url;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
        a.textContent = c.title;
        li.appendChild(a);
      } else {
        li.textContent = c.title;
      }
      ol.appendChild(li);
    });
    el.appendChild(label);
    el.appendChild(ol);
  }
  function rating(el, messageId, chosen) {
    var row = document.createElement("div");
    row.className = "rate";
    [["up", ICON.up, TEXT.helpful], ["down", ICON.down, TEXT.notHelpful]].forEach(function (option) {
      var button = document.createElement("button");
      button.type = "button";
      button.innerHTML = option[1];
      button.title = option[2];
      button.setAttribute("aria-label", option[2]);
      button.dataset.rating = option[0];
      if (chosen === option[0]) button.className = "chosen";
      button.addEventListener("click", function () {
        sendSoon({ action: "feedback", messageId: messageId, rating: option[0], conversationId: conversationId });
      });
      row.appendChild(button);
    });
    el.appendChild(row);
  }
  // "[2]" in an answer names its second source: a link to it (a label when it has no web address).
  // Markers naming no source (an answer that found none) are dropped rather than shown as text.
  var MARKER = /(\s?)\[(\d{1,2}(?:\s*[,，、]\s*\d{1,2})*)\]/g;
  function answerText(target, text, list) {
    target.textContent = "";
    var at = 0;
    text.replace(MARKER, function (whole, space, numbers, offset) {
      target.appendChild(document.createTextNode(text.slice(at, offset)));
      at = offset + whole.length;
      var cited = numbers.split(/\s*[,，、]\s*/).map(function (n) { return (list || [])[Number(n) - 1] && Number(n); })
        .filter(Boolean);
      if (!cited.length) return whole;
      target.appendChild(document.createTextNode(space));
      cited.forEach(function (n) {
        var c = list[n - 1];
        var ref = document.createElement(c.url && /^https?:\/\//i.test(c.url) ? "a" : "span");
        if (ref.tagName === "A") {
          ref.href = c.url;
          ref.target = "_blank";
          ref.rel = "noopener noreferrer";
        }
        ref.className = "cite";
        ref.title = c.title;
        ref.textContent = "[" + n + "]";
        target.appendChild(ref);
      });
      return whole;
    });
    target.appendChild(document.createTextNode(text.slice(at)));
  }
  function botAnswer(id, text, list, feedback, before, complete) {
    var el = rendered[id] || element("bot", "");
    el.classList.remove("streaming");
    answerText(el.querySelector(".text"), text, list);
    if (!el.querySelector(".sources")) citations(el, list);
    if (complete === false) {
      // The model broke off: say so and offer to ask again, instead of rating a half answer.
      el.classList.add("cut");
      if (!el.querySelector(".cut-line")) el.appendChild(retryLine(TEXT.cut, questionOf(id), "cut-line"));
    } else if (!el.querySelector(".rate")) rating(el, id, feedback);
    if (!rendered[id]) place(el, id, before);
    delete answers[id];
    return el;
  }
  // The visitor's question an answer id belongs to ("<question id>.a").
  function questionOf(answerId) {
    var question = answerId && rendered[answerId.replace(/\.a$/, "")];
    var body = question && question.querySelector(".text");
    return body ? body.textContent : "";
  }
  function retryLine(text, question, className) {
    var line = document.createElement("div");
    line.className = className;
    var label = document.createElement("span");
    label.textContent = text;
    line.appendChild(label);
    if (question) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "retry";
      button.textContent = TEXT.retry;
      button.addEventListener("click", function () {
        button.disabled = true;
        submitText(question);
      });
      line.appendChild(button);
    }
    return line;
  }
  function unavailable(text, answerId, before) {
    if (answerId && rendered[answerId]) return rendered[answerId];
    var el = retryLine(text || TEXT.unavailable, questionOf(answerId), "notice unavailable");
    return place(el, answerId, before);
  }
  function visitorMessage(id, text, clientId, before) {
    var el = clientId && pendingByClientId[clientId];
    if (el) {
      el.classList.remove("pending");
      delete pendingByClientId[clientId];
      el.dataset.id = id;
      rendered[id] = el;
      track(id);
      return el;
    }
    return place(element("visitor", text), id, before);
  }
  function agentMessage(m, before) {
    return place(element("agent", m.text, (m.agent && m.agent.name) || TEXT.agent), m.messageId, before);
  }
  function renderReceipts() {
    var old = root.querySelectorAll(".receipt");
    Array.prototype.forEach.call(old, function (r) { r.remove(); });
    if (!agentReadUntil) return;
    var visitors = root.querySelectorAll(".msg.visitor[data-id]");
    for (var i = visitors.length - 1; i >= 0; i--) {
      if (visitors[i].dataset.id <= agentReadUntil) {
        var receipt = document.createElement("div");
        receipt.className = "receipt";
        receipt.textContent = "✓ " + TEXT.read;
        visitors[i].insertAdjacentElement("afterend", receipt);
        return;
      }
    }
  }
  function renderHistoryMessage(m, before) {
    if (rendered[m.messageId]) return;
    if (m.role === "visitor") visitorMessage(m.messageId, m.text, m.clientMessageId, before);
    else if (m.role === "bot") botAnswer(m.messageId, m.text, m.citations, m.feedback, before, m.complete);
    else if (m.role === "event" && m.event === "model_unavailable") unavailable(null, m.messageId, before);
    else if (m.role === "agent") agentMessage(m, before);
    else if (m.role === "event" && m.event === "assigned" && m.agent) notice(t("joined", { name: m.agent.name }), m.messageId, before);
    else if (m.role === "event" && /^(transferred|resolved|returned_to_bot)/.test(m.event || "")) notice(eventText(m), m.messageId, before);
    else if (m.role === "event" && /^(handoff|no_agents)(:|$)/.test(m.event || "")) handoffNotice(m, before);
  }
  // A handoff (or nobody there to take it) as the visitor saw it: the server's notice, in the words it
  // used (kept from the live notice), else ours. The live notice, if this page showed it, takes the id.
  var liveNotices = {};
  function handoffNotice(m, before) {
    var kind = m.event.split(":")[0];
    var live = liveNotices[kind];
    if (live && !live.dataset.id) {
      live.dataset.id = m.messageId;
      rendered[m.messageId] = live;
      track(m.messageId);
      delete liveNotices[kind];
      return;
    }
    var text = noticeTexts[kind] || (kind === "handoff" ? TEXT.queuedNotice : TEXT.nobodyNotice);
    notice(text, m.messageId, before);
  }
  function eventText(m) {
    var name = (m.agent && m.agent.name) || TEXT.agent;
    if (m.event === "transferred") return t("joined", { name: name });
    if (m.event === "resolved") return TEXT.resolved;
    return TEXT.bot;
  }

  // --- the socket ---
  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }
  // A frame the visitor asked for (a person, a rating, a left message): sent now, or once connected.
  function sendSoon(frame) {
    if (send(frame)) return true;
    deferred.push(frame);
    ensureConnected();
    return false;
  }
  // The socket is opened when the chat is opened or something waits: a message or request to send, an
  // answer streaming, a person who may write (queued or assigned); not on every page view. After a
  // close (API Gateway closes idle sockets after 10 minutes) it is reopened only while something
  // waits; an idle chat reconnects when the visitor next writes.
  function needed() {
    return outbox.length > 0 || deferred.length > 0 || Object.keys(answers).length > 0 ||
      (!!conversationId && (status === "queued" || status === "assigned"));
  }
  function ensureConnected() {
    if (socket || ended || refused) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    connect();
  }
  function connect() {
    if (ended || refused) return;
    var query = new URLSearchParams({
      tenant: data.tenant,
      key: data.key,
      lang: pageLanguage.slice(0, 16),
      // The page without its query and fragment: they can hold tokens, order numbers, e-mail addresses.
      page: (location.origin + location.pathname).slice(0, 500),
    });
    if (visitorId) query.set("visitor", visitorId);
    if (visitorToken) query.set("token", visitorToken);
    // A logged-in user of the site, signed by the site's server (data-user-id, data-user-hash).
    if (data.userId && data.userHash) {
      query.set("userId", data.userId);
      query.set("userHash", data.userHash);
    }
    // The second subprotocol asks the server to say so when it refuses this page for good (a wrong key,
    // an origin it does not allow): a closed handshake alone looks just like a network failure.
    var opened = new WebSocket(data.ws + (data.ws.indexOf("?") < 0 ? "?" : "&") + query.toString(),
      ["kefu.v1", "kefu.refused"]);
    socket = opened;
    var established = false;
    socket.onopen = function () {
      established = true;
      if (opened.protocol === "kefu.refused") {
        showRefused();
        opened.close();
        return;
      }
      retries = 0;
      retryTimer = null;
      setOnline(true);
      // Who am I? The answer (``session``) resumes the conversation, or starts afresh as a new visitor.
      send({ action: "session" });
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      handle(frame);
    };
    socket.onclose = function () {
      if (socket === opened) socket = null;
      // A failed attempt while the visitor looks at the chat is retried; an idle socket closed after
      // use is not (until something waits).
      if (ended || refused || !(needed() || (isOpen() && !established))) {
        retryTimer = null;
        setOnline(false);
        return;
      }
      var delay = Math.min(8000, 500 * Math.pow(2, retries++)) * (0.75 + Math.random() / 2);
      retryTimer = setTimeout(function () { retryTimer = null; ensureConnected(); }, delay);
      setOnline(false);
    };
  }
  var ended = false; // the service was suspended: no more reconnects on this page
  function resume(session) {
    if (visitorId && session.visitorId !== visitorId) {
      // The server did not recognise the stored identity (no token, or an invalid one): what was
      // kept belongs to that identity, so this visitor starts clean.
      conversationId = null;
      save("conversation", null);
      outbox.forEach(function (frame) { delete frame.conversationId; });
      save("outbox", outbox);
    }
    visitorId = session.visitorId;
    visitorToken = session.visitorToken;
    save("visitor", visitorId);
    save("token", visitorToken);
    if (conversationId) {
      // A returning visitor: the transcript (or what came while away), then a second look shortly
      // after, for anything posted while this connection was being attached.
      requestHistory();
      setTimeout(function () { if (online && conversationId) requestHistory(); }, 2500);
    }
    outbox.forEach(function (frame) {
      if (conversationId && !frame.conversationId) frame.conversationId = conversationId;
      send(frame);
    });
    var waiting = deferred;
    deferred = [];
    waiting.forEach(function (frame) {
      if (conversationId && frame.action !== "feedback") frame.conversationId = conversationId;
      send(frame);
    });
  }
  var historyMode = "latest";
  function requestHistory(before) {
    var frame = { action: "history", conversationId: conversationId };
    if (before) frame.before = before;
    else if (newestId) frame.after = newestId;
    historyMode = before ? "before" : newestId ? "after" : "latest";
    send(frame);
  }
  function showEarlierButton(show) {
    var old = log.querySelector(".earlier");
    if (old) old.remove();
    if (!show) return;
    var more = document.createElement("button");
    more.type = "button";
    more.className = "earlier";
    more.textContent = TEXT.earlier;
    more.addEventListener("click", function () { requestHistory(oldestId); });
    log.insertBefore(more, log.firstChild);
  }

  function handle(frame) {
    if (frame.conversationId && !conversationId && frame.type !== "error") {
      // The conversation may start without a message (the "talk to a human" button).
      conversationId = frame.conversationId;
      save("conversation", conversationId);
      save("status", status);
    }
    switch (frame.type) {
      case "session": {
        resume(frame);
        break;
      }
      case "session.ended": {
        ended = true;
        setOnline(false);
        break;
      }
      case "ack": {
        if (frame.conversationId !== conversationId) {
          conversationId = frame.conversationId;
          save("conversation", conversationId);
        }
        outbox = outbox.filter(function (f) { return f.clientMessageId !== frame.clientMessageId; });
        save("outbox", outbox);
        if (pendingByClientId[frame.clientMessageId]) visitorMessage(frame.messageId, "", frame.clientMessageId);
        break;
      }
      case "answer.delta": {
        var answer = answers[frame.messageId];
        if (!answer) {
          if (rendered[frame.messageId]) break; // already complete (history)
          var el = place(element("bot streaming", ""), null);
          answer = answers[frame.messageId] = { el: el, pieces: {}, next: 0 };
        }
        answer.pieces[frame.seq] = frame.text;
        var textEl = answer.el.querySelector(".text");
        while (answer.pieces[answer.next] != null) {
          textEl.textContent += answer.pieces[answer.next];
          delete answer.pieces[answer.next++];
        }
        scrollDown();
        break;
      }
      case "answer.end": {
        var streaming = answers[frame.messageId];
        if (streaming && !rendered[frame.messageId]) {
          streaming.el.dataset.id = frame.messageId;
          rendered[frame.messageId] = streaming.el;
          track(frame.messageId);
        }
        botAnswer(frame.messageId, frame.text, frame.citations, null, null, frame.complete);
        countUnread();
        break;
      }
      case "answer.cancelled": {
        var dropped = answers[frame.messageId];
        if (dropped) dropped.el.remove();
        delete answers[frame.messageId];
        break;
      }
      case "conversation.status": {
        setStatus(frame.status);
        agentName = frame.agent ? frame.agent.name : status === "assigned" ? agentName : null;
        renderStatus();
        break;
      }
      case "notice": {
        if (frame.agent) agentName = frame.agent.name;
        var shown = notice(frame.text);
        var kind = frame.code === "queued" ? "handoff" : /^(no_agents|offline)$/.test(frame.code) ? "no_agents" : null;
        if (kind) {
          liveNotices[kind] = shown;
          noticeTexts[kind] = frame.text;
          save("notices", noticeTexts);
        }
        if (frame.leaveMessage) leaveForm();
        if (frame.code === "message_left") {
          var form = root.querySelector(".leave");
          if (form) form.remove();
        }
        renderStatus();
        countUnread();
        break;
      }
      case "agent.joined": {
        agentName = frame.agent.name;
        if (root.querySelector(".leave")) root.querySelector(".leave").remove();
        notice(t("joined", { name: frame.agent.name }));
        renderStatus();
        break;
      }
      case "agent.message": {
        if (rendered[frame.messageId]) break;
        typingLine.hidden = true;
        agentMessage(frame);
        countUnread();
        reportRead();
        break;
      }
      case "typing": {
        if (frame.from !== "agent") break;
        clearTimeout(typingTimer);
        typingLine.hidden = !frame.typing;
        typingLine.textContent = t("typing", { name: frame.name || TEXT.agent });
        if (frame.typing) typingTimer = setTimeout(function () { typingLine.hidden = true; }, 8000);
        break;
      }
      case "read": {
        if (frame.by === "agent" && (!agentReadUntil || frame.messageId > agentReadUntil)) {
          agentReadUntil = frame.messageId;
          renderReceipts();
        }
        break;
      }
      case "feedback.saved": {
        var rated = rendered[frame.messageId];
        if (rated) {
          Array.prototype.forEach.call(rated.querySelectorAll(".rate button"), function (b) {
            b.className = b.dataset.rating === frame.rating ? "chosen" : "";
          });
        }
        break;
      }
      case "history": {
        setStatus(frame.status);
        agentName = frame.agent ? frame.agent.name : null;
        var page = frame.messages;
        var earlierPage = page.length > 0 && oldestId && page[page.length - 1].messageId < oldestId;
        // Earlier pages go on top; newer ones before any message still waiting to be sent.
        var anchor = earlierPage ? log.querySelector("[data-id]") : log.querySelector(".msg.visitor.pending");
        page.forEach(function (m) { renderHistoryMessage(m, anchor); });
        if (earlierPage || historyMode === "latest") showEarlierButton(frame.hasMore);
        else if (frame.hasMore) requestHistory(); // a forward page: fetch the rest
        if (frame.agentReadUntil) agentReadUntil = frame.agentReadUntil;
        renderReceipts();
        renderStatus();
        reportRead();
        break;
      }
      case "error": {
        if (frame.code === "model_unavailable") {
          // No answer could be given: the tenant's text (or ours) and a button to ask again.
          unavailable(frame.text, frame.messageId);
          countUnread();
          break;
        }
        var failed = frame.clientMessageId && pendingByClientId[frame.clientMessageId];
        if (frame.code === "not_found" && /conversation/.test(frame.message || "")) {
          // The stored conversation is gone (expired): start a new one and resend.
          conversationId = null;
          save("conversation", null);
          outbox.forEach(function (f) { delete f.conversationId; send(f); });
          break;
        }
        if (frame.code === "retry" && frame.clientMessageId) {
          var again = outbox.filter(function (f) { return f.clientMessageId === frame.clientMessageId; })[0];
          if (again) setTimeout(function () { send(again); }, 1000);
          break;
        }
        var leaving = root.querySelector(".leave button");
        if (leaving) leaving.disabled = false;
        if (failed) {
          failed.classList.add("failed");
          outbox = outbox.filter(function (f) { return f.clientMessageId !== frame.clientMessageId; });
          save("outbox", outbox);
        }
        notice(t("failed", { message: frame.message }));
        break;
      }
    }
  }

  function reportRead() {
    if (!isOpen() || document.visibilityState !== "visible" || !conversationId) return;
    var agents = root.querySelectorAll(".msg.agent[data-id]");
    var newest = agents.length ? agents[agents.length - 1].dataset.id : null;
    if (newest && newest !== reportedRead && send({ action: "read", messageId: newest, conversationId: conversationId })) {
      reportedRead = newest;
    }
  }
  function sendTyping(typing) {
    if (status !== "assigned" || !conversationId) return;
    send({ action: "typing", typing: typing, conversationId: conversationId });
  }

  // --- user actions ---
  bubble.addEventListener("click", function () { setOpen(!isOpen()); });
  $(".close").addEventListener("click", function () { setOpen(false); });
  humanButton.addEventListener("click", function () {
    var frame = { action: "requestHuman" };
    if (conversationId) frame.conversationId = conversationId;
    sendSoon(frame);
  });
  function submitText(text) {
    var clientMessageId = "m-" + Date.now().toString(36) + "-" + randomId(10);
    var frame = { action: "sendMessage", clientMessageId: clientMessageId, text: text };
    if (conversationId) frame.conversationId = conversationId;
    outbox.push(frame);
    save("outbox", outbox);
    var el = place(element("visitor pending", text), null);
    pendingByClientId[clientMessageId] = el;
    if (refused) el.classList.add("failed");
    if (!send(frame)) ensureConnected();
  }
  $("form.compose").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    clearTimeout(stopTypingTimer);
    lastTypingSent = 0;
    submitText(text);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("form.compose").requestSubmit();
    }
  });
  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - lastTypingSent > 3000) {
      lastTypingSent = now;
      sendTyping(true);
    }
    clearTimeout(stopTypingTimer);
    stopTypingTimer = setTimeout(function () { lastTypingSent = 0; sendTyping(false); }, 4000);
  });
  document.addEventListener("visibilitychange", reportRead);

  // Messages that were typed but never acked (e.g. the page was closed) are shown and resent.
  outbox.forEach(function (frame) {
    pendingByClientId[frame.clientMessageId] = place(element("visitor pending", frame.text), null);
  });

  function start() {
    document.body.appendChild(host);
    renderStatus();
    var wasOpen = false;
    try { wasOpen = !!sessionStorage.getItem(prefix + "open"); } catch (e) { /* ignore */ }
    if (wasOpen) setOpen(true); // connects
    else if (needed()) ensureConnected(); // a message to resend, or a person who may write meanwhile
  }
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();

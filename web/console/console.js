/*
 * kefu agent console: plain JavaScript, no build step. Talks to the same WebSocket API as the widget,
 * as role=agent with the agent's key (docs/protocol.md, "Agents").
 *
 * Where it connects comes only from config.json, served next to this page by the same origin: never
 * from the page's URL, so a crafted link cannot send an agent's key elsewhere. The key travels as a
 * WebSocket subprotocol ("kefu.key.<key>"), never in a URL (docs/security.md).
 */
"use strict";

const $ = (id) => document.getElementById(id);
const store = sessionStorage;

const state = {
  ws: "", // from config.json (same origin) only
  key: store.getItem("kefu.console.key") || "",
  socket: null,
  opened: false,
  retries: 0,
  me: null, // AgentPresence
  queue: [],
  mine: [],
  tickets: [], // open left messages (TicketOut), oldest first
  team: [],
  canned: [],
  conversations: {}, // id -> summary (queue, mine, or opened)
  leftQueue: new Map(), // id -> updatedAt when it left the queue (a late "added" older than that is stale)
  transcripts: {}, // id -> Map(messageId -> message)
  selected: null,
  unread: new Set(),
  outbox: [], // agentMessage / note frames waiting for their ack
  reportedRead: {},
  visitorTyping: null,
  unfollowable: new Set(), // bot-owned conversations this agent may not read (the server said not_found)
};

// --- login ---

async function configuredWsUrl() {
  // The deployment serves {"wsUrl": "wss://…"} next to the console (infra/, local/run.py).
  try {
    const response = await fetch("config.json", { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) return "";
    const url = new URL((await response.json()).wsUrl || "");
    return url.protocol === "wss:" || url.protocol === "ws:" ? url.href : "";
  } catch (e) {
    return "";
  }
}

function showLogin(message) {
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  alerts.prepare(); // inside the click: browsers allow sound and the notification prompt only then
  state.key = $("login-key").value.trim();
  store.setItem("kefu.console.key", state.key);
  start();
});

$("logout").addEventListener("click", () => endSession(""));

function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  state.opened = false;
  connect();
}

// --- the socket ---

function connect() {
  const url = new URL(state.ws);
  url.searchParams.set("role", "agent");
  let socket;
  try {
    socket = new WebSocket(url.href, ["kefu.v1", `kefu.key.${state.key}`]);
  } catch (e) {
    showLogin("That is not an agent key."); // a key with characters a subprotocol cannot carry
    return;
  }
  state.socket = socket;
  setConn("connecting…", "");
  socket.onopen = () => {
    state.opened = true;
    state.retries = 0;
    setConn("online", "online");
    send({ action: "agentSync" });
    for (const frame of state.outbox) send(frame);
    if (state.selected) requestHistory(state.selected, true);
  };
  socket.onmessage = (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    handle(frame);
  };
  socket.onclose = () => {
    if (!state.opened || state.retries >= 6) {
      // Never opened, or the last attempts all failed before opening (a changed key looks the same
      // as a network loss from here): ask the agent rather than retry forever.
      showLogin("Could not log in: check the agent key (a new key logs out the old one).");
      return;
    }
    setConn("reconnecting…", "offline");
    const delay = Math.min(8000, 500 * 2 ** state.retries++);
    setTimeout(connect, delay);
  };
}

function send(frame) {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) return false;
  state.socket.send(JSON.stringify(frame));
  return true;
}

function setConn(text, cls) {
  $("conn").textContent = text;
  $("conn").className = `conn ${cls}`;
}

// --- getting the agent's attention ---
// The tab title counts what waits for the agent (queue + unread); while the tab is hidden a new
// conversation or visitor message also chimes and shows a desktop notification (if allowed).
const TITLE = document.title;
const alerts = {
  audio: null,
  prepare() {
    try {
      this.audio = this.audio || new AudioContext();
    } catch (e) {
      this.audio = null; // no Web Audio: the title and notifications still work
    }
    if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
  },
  chime() {
    if (!this.audio) return;
    const tone = this.audio.createOscillator();
    const gain = this.audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, this.audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, this.audio.currentTime + 0.25);
    tone.connect(gain).connect(this.audio.destination);
    tone.start();
    tone.stop(this.audio.currentTime + 0.25);
  },
  notify(text) {
    if (!document.hidden) return;
    this.chime();
    if ("Notification" in window && Notification.permission === "granted") {
      new Notification("kefu", { body: text, tag: "kefu-console" });
    }
  },
};

function renderTitle() {
  const waiting = state.queue.length + state.unread.size;
  document.title = waiting ? `(${waiting}) ${TITLE}` : TITLE;
}

function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), 5000);
}

const historyMode = {}; // conversation id -> what the last history request asked for

function requestHistory(conversationId, onlyNewer, before) {
  const frame = { action: "history", conversationId, limit: 100 };
  const known = state.transcripts[conversationId];
  const ids = known ? [...known.keys()].filter((id) => !id.startsWith("pending:")).sort() : [];
  if (before) frame.before = before;
  else if (onlyNewer && ids.length) frame.after = ids[ids.length - 1];
  historyMode[conversationId] = frame.before ? "before" : frame.after ? "after" : "latest";
  return send(frame);
}

// --- frames ---

function upsert(summary) {
  state.conversations[summary.conversationId] = summary;
  // Queued or held again: once it is back with the bot, this console may follow it again.
  if (summary.status === "queued" || summary.status === "assigned") state.unfollowable.delete(summary.conversationId);
}

function endSession(message) {
  store.removeItem("kefu.console.key");
  state.key = "";
  if (state.socket) {
    state.socket.onclose = null;
    state.socket.close();
  }
  $("login-key").value = "";
  showLogin(message);
}

function handle(frame) {
  switch (frame.type) {
    case "session.ended":
      // The key was rotated or the agent disabled: reconnecting with the old key cannot work.
      endSession(
        frame.reason === "disabled"
          ? "Your account was disabled by an administrator."
          : "Your agent key was changed: log in with the new one."
      );
      return;
    case "agent.state":
      state.me = frame.agent;
      state.queue = frame.queue;
      state.leftQueue.clear();
      state.mine = frame.mine;
      state.team = frame.agents;
      state.canned = frame.cannedReplies;
      [...frame.queue, ...frame.mine].forEach(upsert);
      setTickets(frame.tickets || []);
      $("me-name").textContent = frame.agent.name;
      $("presence").value = frame.agent.presence === "away" ? "away" : "online";
      renderCanned();
      renderAll();
      break;
    case "queue.updated": {
      // Deltas (the whole queue came with agent.state). Two changes made at once may arrive in either
      // order: updatedAt decides which one is newer.
      for (const gone of frame.removed || []) {
        const held = state.queue.find((q) => q.conversationId === gone.conversationId);
        if (held && held.updatedAt > gone.updatedAt) continue; // it was queued again since
        state.queue = state.queue.filter((q) => q.conversationId !== gone.conversationId);
        state.leftQueue.set(gone.conversationId, gone.updatedAt);
      }
      const known = new Set(state.queue.map((q) => q.conversationId));
      const arrived = (frame.added || []).filter(
        (q) => !known.has(q.conversationId) && !(state.leftQueue.get(q.conversationId) >= q.updatedAt)
      );
      if (arrived.length) alerts.notify(`Waiting for a person: ${arrived[0].preview || visitorName(arrived[0])}`);
      state.queue = [...state.queue, ...arrived].sort((a, b) => (a.waitingSince || 0) - (b.waitingSince || 0));
      arrived.forEach(upsert);
      // The open conversation came back (e.g. after "Return to bot" the visitor asked for a person again):
      // what was said while the bot had it reaches this console only through the history.
      if (arrived.some((q) => q.conversationId === state.selected)) requestHistory(state.selected, true);
      renderAll();
      break;
    }
    case "tickets.updated": {
      const known = new Set(state.tickets.map((t) => t.conversationId));
      const arrived = frame.tickets.filter((t) => !known.has(t.conversationId));
      if (arrived.length) {
        toast(`A visitor left a message: ${arrived[0].contact}`);
        alerts.notify(`A visitor left a message: ${arrived[0].text || arrived[0].contact}`);
      }
      setTickets(frame.tickets);
      renderAll();
      break;
    }
    case "conversation.assigned": {
      const c = frame.conversation;
      upsert(c);
      state.mine = [c, ...state.mine.filter((m) => m.conversationId !== c.conversationId)];
      state.queue = state.queue.filter((q) => q.conversationId !== c.conversationId);
      if (frame.by !== "accept") {
        toast(`New conversation for you (${frame.by}).`);
        alerts.notify(`New conversation for you: ${c.preview || visitorName(c)}`);
      }
      if (!state.selected || frame.by === "accept") select(c.conversationId);
      else state.unread.add(c.conversationId);
      if (state.selected === c.conversationId) requestHistory(c.conversationId, true);
      renderAll();
      break;
    }
    case "conversation.updated": {
      const c = frame.conversation;
      upsert(c);
      const stillMine = c.status === "assigned" && c.assignee && state.me && c.assignee.agentId === state.me.agentId;
      state.mine = stillMine
        ? state.mine.map((m) => (m.conversationId === c.conversationId ? c : m))
        : state.mine.filter((m) => m.conversationId !== c.conversationId);
      if (state.selected === c.conversationId) requestHistory(c.conversationId, true);
      renderAll();
      break;
    }
    case "presence": {
      const others = state.team.filter((a) => a.agentId !== frame.agent.agentId);
      state.team = [...others, frame.agent];
      if (state.me && frame.agent.agentId === state.me.agentId) state.me = frame.agent;
      renderTeam();
      renderDetails();
      break;
    }
    case "visitor.message":
      addMessage(frame.conversationId, {
        messageId: frame.messageId,
        role: "visitor",
        text: frame.text,
        createdAt: frame.createdAt,
      });
      touch(frame.conversationId, frame.text);
      alerts.notify(frame.text);
      if (state.selected === frame.conversationId) {
        hideTyping();
        reportRead();
      } else {
        state.unread.add(frame.conversationId);
      }
      renderLists();
      break;
    case "agent.message":
    case "note":
      addMessage(frame.conversationId, {
        messageId: frame.messageId,
        role: frame.type === "note" ? "note" : "agent",
        text: frame.text,
        createdAt: frame.createdAt,
        agent: frame.agent,
        clientMessageId: frame.clientMessageId,
      });
      break;
    case "ack": {
      const pending = state.outbox.find((f) => f.clientMessageId === frame.clientMessageId);
      state.outbox = state.outbox.filter((f) => f.clientMessageId !== frame.clientMessageId);
      const transcript = state.transcripts[frame.conversationId];
      if (pending && transcript) {
        transcript.delete(`pending:${frame.clientMessageId}`);
        if (!transcript.has(frame.messageId)) {
          transcript.set(frame.messageId, {
            messageId: frame.messageId,
            role: pending.action === "note" ? "note" : "agent",
            text: pending.text,
            createdAt: Date.now(),
            agent: state.me,
            clientMessageId: frame.clientMessageId,
          });
        }
        if (state.selected === frame.conversationId) renderTranscript();
      }
      break;
    }
    case "typing":
      if (frame.from === "visitor" && frame.conversationId === state.selected) {
        $("visitor-typing").hidden = !frame.typing;
        clearTimeout(state.visitorTyping);
        if (frame.typing) state.visitorTyping = setTimeout(hideTyping, 8000);
      }
      break;
    case "read": {
      const c = state.conversations[frame.conversationId];
      if (c && frame.by === "visitor") {
        c.visitorReadUntil = frame.messageId;
        if (state.selected === frame.conversationId) renderTranscript();
      }
      break;
    }
    case "history": {
      upsert(frame.conversation);
      const transcript = state.transcripts[frame.conversationId] || new Map();
      state.transcripts[frame.conversationId] = transcript;
      for (const m of frame.messages) transcript.set(m.messageId, m);
      if (frame.conversationId === following && frame.messages.length) followDelay = FOLLOW_BOT_MS;
      if (frame.hasMore && frame.messages.length) {
        // The whole story: forward pages continue forward, the first page fetches what came before it.
        if (historyMode[frame.conversationId] === "after") requestHistory(frame.conversationId, true);
        else requestHistory(frame.conversationId, false, frame.messages[0].messageId);
      }
      if (state.selected === frame.conversationId) {
        renderChat();
        reportRead();
      }
      renderLists();
      break;
    }
    case "error":
      if (frame.code === "not_found" && following && frame.message.includes(following)) {
        // Following a conversation this agent may no longer read (someone else held it since): stop.
        state.unfollowable.add(following);
        following = null;
        break;
      }
      toast(`${frame.code}: ${frame.message}`);
      if (frame.clientMessageId) {
        state.outbox = state.outbox.filter((f) => f.clientMessageId !== frame.clientMessageId);
        for (const transcript of Object.values(state.transcripts)) transcript.delete(`pending:${frame.clientMessageId}`);
        renderTranscript();
      }
      break;
  }
}

function addMessage(conversationId, message) {
  const transcript = state.transcripts[conversationId];
  if (!transcript) return; // not opened yet: the history brings it
  if (message.clientMessageId) transcript.delete(`pending:${message.clientMessageId}`);
  transcript.set(message.messageId, message);
  if (state.selected === conversationId) renderTranscript();
}

function touch(conversationId, text) {
  const c = state.conversations[conversationId];
  if (c) c.preview = text;
  for (const list of [state.mine, state.queue]) {
    for (const item of list) if (item.conversationId === conversationId) item.preview = text;
  }
}

function hideTyping() {
  $("visitor-typing").hidden = true;
}

// --- rendering ---

function formatWait(since) {
  const seconds = Math.max(0, Math.floor((Date.now() - since) / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h ? `${h}h ${String(m).padStart(2, "0")}m` : `${m}:${String(s).padStart(2, "0")}`;
}

function visitorName(c) {
  return c.visitor.alias;
}

// Visitors from a messaging channel (issue 14): the channel's kind, and the customer's platform id.
const CHANNEL_NAMES = { wechat_oa: "WeChat", wecom_kf: "WeCom", webhook: "App" };

function channelBadge(visitor) {
  const channel = visitor && visitor.channel;
  if (!channel) return null;
  const badge = document.createElement("span");
  badge.className = "channel-badge";
  badge.textContent = CHANNEL_NAMES[channel.kind] || channel.kind;
  badge.title = `${channel.kind} · ${channel.customerId}`;
  return badge;
}

// What an agent must know when the platform stopped taking messages for this customer.
function channelNoticeText(visitor) {
  const notice = visitor && visitor.channelNotice;
  if (!notice) return "";
  const name = CHANNEL_NAMES[visitor.channel && visitor.channel.kind] || "The channel";
  if (notice.status === "session_elsewhere") return `${name}: this customer is being served in WeCom; replies here are not delivered.`;
  if (notice.status === "not_delivered") return `${name}: the last message could not be delivered (${notice.reason}).`;
  return `${name} window closed: replies are not delivered until the customer writes again (${notice.reason}).`;
}

// "Visitor 3F2A · zh-CN"; a client that sent no language shows none (not a "?").
function withLanguage(name, visitor) {
  return visitor && visitor.language ? `${name} · ${visitor.language}` : name;
}

// A left message belongs to a conversation the agent may never have listed: a minimal summary lets
// them open it (its history brings the full one).
function setTickets(tickets) {
  state.tickets = tickets;
  for (const t of tickets) {
    if (!state.conversations[t.conversationId]) {
      upsert({ conversationId: t.conversationId, status: "bot", visitor: t.visitor, updatedAt: t.createdAt, preview: t.text });
    }
  }
}

function openTicket(conversationId) {
  return state.tickets.find((t) => t.conversationId === conversationId) || null;
}

function renderTickets() {
  const ul = $("tickets");
  ul.replaceChildren();
  $("tickets-count").textContent = state.tickets.length;
  if (!state.tickets.length) {
    const li = document.createElement("li");
    li.className = "empty-row";
    li.textContent = "No left messages.";
    ul.append(li);
    return;
  }
  for (const t of state.tickets) {
    const li = document.createElement("li");
    li.dataset.ticket = t.conversationId;
    li.className = state.selected === t.conversationId ? "selected" : "";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = withLanguage(t.name || visitorName({ visitor: t.visitor }), t.visitor);
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = new Date(t.createdAt).toLocaleString();
    const contact = document.createElement("span");
    contact.className = "contact";
    contact.textContent = t.contact;
    const text = document.createElement("span");
    text.className = "preview";
    text.textContent = t.text || "";
    li.append(name, when, contact, text);
    li.addEventListener("click", () => select(t.conversationId));
    ul.append(li);
  }
}

function renderAll() {
  renderLists();
  renderTeam();
  renderChat();
}

function renderLists() {
  renderList($("queue"), state.queue, "The queue is empty.", true);
  renderList($("mine"), state.mine, "No conversations assigned to you.", false);
  $("queue-count").textContent = state.queue.length;
  $("mine-count").textContent = state.mine.length;
  renderTickets();
  renderTitle();
}

function renderList(ul, items, emptyText, waiting) {
  ul.replaceChildren();
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "empty-row";
    li.textContent = emptyText;
    ul.append(li);
    return;
  }
  for (const item of items) {
    const c = state.conversations[item.conversationId] || item;
    const li = document.createElement("li");
    li.dataset.conversation = c.conversationId;
    li.className = state.selected === c.conversationId ? "selected" : "";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = withLanguage(visitorName(c), c.visitor);
    const badge = channelBadge(c.visitor);
    if (badge) name.append(" ", badge);
    li.append(name);
    if (waiting && c.waitingSince) {
      const wait = document.createElement("span");
      wait.className = "wait";
      wait.dataset.since = c.waitingSince;
      wait.textContent = formatWait(c.waitingSince);
      li.append(wait);
    } else if (state.unread.has(c.conversationId)) {
      const dot = document.createElement("span");
      dot.className = "dot";
      li.append(dot);
    } else {
      li.append(document.createElement("span"));
    }
    const preview = document.createElement("span");
    preview.className = "preview";
    preview.textContent = c.preview || (c.reason ? `(${c.reason.replace("_", " ")})` : "");
    li.append(preview);
    li.addEventListener("click", () => select(c.conversationId));
    ul.append(li);
  }
}

function renderTeam() {
  const ul = $("team");
  ul.replaceChildren();
  for (const a of [...state.team].sort((x, y) => x.name.localeCompare(y.name))) {
    const li = document.createElement("li");
    const who = document.createElement("span");
    who.className = `presence-${a.presence}`;
    who.textContent = a.name + (state.me && a.agentId === state.me.agentId ? " (you)" : "");
    const load = document.createElement("span");
    load.className = "muted";
    const held = state.me && a.agentId === state.me.agentId ? state.mine.length : a.load;
    load.textContent = `${held}/${a.capacity}`;
    li.append(who, load);
    ul.append(li);
  }
}

function renderCanned() {
  const select = $("canned");
  select.replaceChildren(new Option("Canned replies…", ""));
  state.canned.forEach((reply, index) => select.append(new Option(reply.title, String(index))));
}

function select(conversationId) {
  state.selected = conversationId;
  state.unread.delete(conversationId);
  hideTyping();
  if (!state.transcripts[conversationId]) requestHistory(conversationId, false);
  else requestHistory(conversationId, true);
  renderAll();
}

function selectedSummary() {
  return state.selected ? state.conversations[state.selected] : null;
}

function isMine(c) {
  return c && c.status === "assigned" && c.assignee && state.me && c.assignee.agentId === state.me.agentId;
}

function renderChat() {
  const c = selectedSummary();
  $("empty").hidden = !!c;
  for (const id of ["chat-head", "transcript", "composer", "details"]) $(id).hidden = !c;
  $("channel-notice").hidden = true;
  if (!c) return;
  $("chat-title").textContent = visitorName(c);
  const badge = channelBadge(c.visitor);
  if (badge) $("chat-title").append(" ", badge);
  const channelNotice = channelNoticeText(c.visitor);
  $("channel-notice").textContent = channelNotice;
  $("channel-notice").hidden = !channelNotice;
  $("chat-status").textContent = c.status;
  $("chat-status").className = `status ${c.status}`;
  $("chat-assignee").textContent = c.assignee ? `Agent: ${c.assignee.name}` : "";
  const noteMode = $("note-mode").checked;
  $("composer").classList.toggle("note-mode", noteMode);
  const canReply = isMine(c);
  $("send").disabled = !noteMode && !canReply;
  $("composer-hint").textContent = noteMode
    ? "Only agents see notes."
    : canReply
      ? ""
      : c.status === "queued"
        ? "Accept the conversation to reply."
        : "Not assigned to you: notes only.";
  renderTranscript();
  renderDetails();
}

function renderTranscript() {
  const c = selectedSummary();
  const box = $("transcript");
  if (!c) return;
  const transcript = state.transcripts[c.conversationId] || new Map();
  box.replaceChildren();
  const ordered = [...transcript.values()].sort((a, b) => (a.messageId < b.messageId ? -1 : 1));
  let lastAgent = null;
  for (const m of ordered) {
    const el = document.createElement("div");
    el.className = `m ${m.role}${m.messageId.startsWith("pending:") ? " pending" : ""}`;
    el.dataset.id = m.messageId;
    if (m.role !== "event") {
      const label = document.createElement("div");
      label.className = "label";
      label.textContent =
        m.role === "visitor" ? "Visitor"
        : m.role === "bot" ? "Bot"
        : m.role === "note" ? `Internal note · ${(m.agent && m.agent.name) || ""}`
        : (m.agent && m.agent.name) || "Agent";
      el.append(label);
    }
    const text = document.createElement("div");
    text.textContent = m.text;
    el.append(text);
    if (m.role === "bot" && m.citations && m.citations.length) {
      const ol = document.createElement("ol");
      ol.className = "sources";
      for (const cite of m.citations) {
        const li = document.createElement("li");
        if (cite.url && /^https?:\/\//i.test(cite.url)) {
          const a = document.createElement("a");
          a.href = cite.url;
          a.target = "_blank";
          a.rel = "noopener noreferrer";
          a.textContent = cite.title;
          li.append(a);
        } else {
          li.textContent = cite.title;
        }
        li.title = cite.snippet;
        ol.append(li);
      }
      el.append(ol);
    }
    if (m.role === "bot" && m.feedback) {
      const fb = document.createElement("div");
      fb.className = "feedback";
      fb.textContent = m.feedback === "down" ? "Visitor rated it: not helpful" : "Visitor rated it: helpful";
      el.append(fb);
    }
    box.append(el);
    if (m.role === "agent" && !m.messageId.startsWith("pending:")) lastAgent = el;
  }
  if (lastAgent && c.visitorReadUntil && lastAgent.dataset.id <= c.visitorReadUntil) {
    const seen = document.createElement("div");
    seen.className = "seen";
    seen.textContent = "✓ Seen";
    lastAgent.after(seen);
  }
  box.scrollTop = box.scrollHeight;
}

function renderDetails() {
  const c = selectedSummary();
  if (!c) return;
  const dl = $("visitor-info");
  dl.replaceChildren();
  const rows = [
    ["Visitor", c.visitor.alias],
    ["Page", c.visitor.page || "—"],
    ["Language", c.visitor.language || "—"],
    ["First seen", new Date(c.visitor.firstSeen).toLocaleString()],
    ...(c.visitor.channel
      ? [["Channel", `${CHANNEL_NAMES[c.visitor.channel.kind] || c.visitor.channel.kind} · ${c.visitor.channel.customerId}`]]
      : []),
    ["Status", c.status],
    ["Reason", c.reason ? c.reason.replace("_", " ") : "—"],
    ["Waiting since", c.waitingSince ? new Date(c.waitingSince).toLocaleTimeString() : "—"],
  ];
  const ticket = openTicket(c.conversationId);
  if (ticket) {
    rows.push(["Left message", ticket.text || "—"], ["Contact", ticket.contact]);
    if (ticket.name) rows.push(["Name", ticket.name]);
  }
  for (const [name, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    if (name === "Page" && /^https?:\/\//i.test(value)) {
      const a = document.createElement("a");
      a.href = value;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = value;
      dd.append(a);
    } else {
      dd.textContent = value;
    }
    dl.append(dt, dd);
  }
  const mine = isMine(c);
  $("accept").hidden = c.status !== "queued";
  $("transfer-box").hidden = !mine;
  $("resolve").hidden = !(mine || c.status === "queued");
  $("return-to-bot").hidden = !(mine || c.status === "queued");
  $("close-ticket").hidden = !ticket;
  const target = $("transfer-to");
  const current = target.value;
  target.replaceChildren();
  for (const a of state.team) {
    if (state.me && a.agentId === state.me.agentId) continue;
    target.append(new Option(`${a.name} (${a.presence})`, a.agentId));
  }
  if (current) target.value = current;
}

function reportRead() {
  const c = selectedSummary();
  if (!c || document.visibilityState !== "visible") return;
  const transcript = state.transcripts[c.conversationId];
  if (!transcript) return;
  const visitors = [...transcript.values()].filter((m) => m.role === "visitor").map((m) => m.messageId).sort();
  const newest = visitors.pop();
  if (newest && state.reportedRead[c.conversationId] !== newest) {
    if (send({ action: "read", conversationId: c.conversationId, messageId: newest })) {
      state.reportedRead[c.conversationId] = newest;
    }
  }
}

// --- agent actions ---

function randomId() {
  const bytes = new Uint8Array(10);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => (b % 36).toString(36)).join("");
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const c = selectedSummary();
  const text = $("reply").value.trim();
  if (!c || !text) return;
  const note = $("note-mode").checked;
  const frame = {
    action: note ? "note" : "agentMessage",
    conversationId: c.conversationId,
    clientMessageId: `a-${Date.now().toString(36)}-${randomId()}`,
    text,
  };
  state.outbox.push(frame);
  const transcript = state.transcripts[c.conversationId] || new Map();
  state.transcripts[c.conversationId] = transcript;
  transcript.set(`pending:${frame.clientMessageId}`, {
    messageId: `pending:${frame.clientMessageId}`,
    role: note ? "note" : "agent",
    text,
    agent: state.me,
  });
  $("reply").value = "";
  clearTimeout(state.stopTyping);
  if (!note) send({ action: "typing", conversationId: c.conversationId, typing: false });
  state.lastTyping = 0;
  send(frame);
  renderTranscript();
});

$("reply").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

$("reply").addEventListener("input", () => {
  const c = selectedSummary();
  if (!isMine(c) || $("note-mode").checked) return;
  const now = Date.now();
  if (!state.lastTyping || now - state.lastTyping > 3000) {
    state.lastTyping = now;
    send({ action: "typing", conversationId: c.conversationId, typing: true });
  }
  clearTimeout(state.stopTyping);
  state.stopTyping = setTimeout(() => {
    state.lastTyping = 0;
    send({ action: "typing", conversationId: c.conversationId, typing: false });
  }, 4000);
});

$("note-mode").addEventListener("change", renderChat);

$("canned").addEventListener("change", () => {
  const reply = state.canned[Number($("canned").value)];
  if (reply) {
    const name = state.me ? state.me.name : "";
    const box = $("reply");
    box.value = (box.value ? `${box.value} ` : "") + reply.text.replaceAll("{agent}", name);
    box.focus();
  }
  $("canned").value = "";
});

$("accept").addEventListener("click", () => send({ action: "accept", conversationId: state.selected }));
$("resolve").addEventListener("click", () => send({ action: "resolve", conversationId: state.selected }));
$("return-to-bot").addEventListener("click", () => send({ action: "returnToBot", conversationId: state.selected }));
$("close-ticket").addEventListener("click", () => send({ action: "closeTicket", conversationId: state.selected }));
$("transfer").addEventListener("click", () => {
  const to = $("transfer-to").value;
  if (to) send({ action: "transfer", conversationId: state.selected, agentId: to });
});
$("presence").addEventListener("change", () => send({ action: "setPresence", status: $("presence").value }));
document.addEventListener("visibilitychange", reportRead);

setInterval(() => {
  for (const el of document.querySelectorAll(".wait[data-since]")) el.textContent = formatWait(Number(el.dataset.since));
}, 1000);

// An open conversation the bot owns (handed back, or resolved): no frame tells this console what the
// visitor and the bot say there, so its newer messages are fetched while the page is visible: every
// 3 s, then less often while nothing new comes (up to every 30 s; a new message or another selection
// starts over). Nothing while the console is hidden or shows something else.
const FOLLOW_BOT_MS = 3000;
const FOLLOW_BOT_MAX_MS = 30_000;
let following = null; // the conversation the last follow-up read was for
let followDelay = FOLLOW_BOT_MS;

function followBot() {
  const c = selectedSummary();
  const followable =
    c &&
    ["bot", "resolved"].includes(c.status) &&
    !state.unfollowable.has(c.conversationId) &&
    state.transcripts[c.conversationId] && // its first page has come
    document.visibilityState === "visible";
  if (followable) {
    if (following !== c.conversationId) followDelay = FOLLOW_BOT_MS;
    following = c.conversationId;
    if (requestHistory(c.conversationId, true)) followDelay = Math.min(followDelay * 1.5, FOLLOW_BOT_MAX_MS);
  }
  setTimeout(followBot, followable ? followDelay : FOLLOW_BOT_MS);
}
setTimeout(followBot, FOLLOW_BOT_MS);

// "Still here": keeps the connection from idling out and lets the server tell visitors who wait too long.
setInterval(() => send({ action: "heartbeat" }), 60_000);

(async () => {
  state.ws = await configuredWsUrl();
  $("login-ws").textContent = state.ws || "not configured";
  $("login-form").querySelector("button").disabled = !state.ws;
  // A key typed (or autofilled) while config.json was loading is kept.
  if (!$("login-key").value) $("login-key").value = state.key;
  if (!state.ws) {
    showLogin("This console has no server configured: its config.json is missing or has no wsUrl.");
  } else if (state.key) {
    start();
  } else {
    showLogin("");
  }
})();

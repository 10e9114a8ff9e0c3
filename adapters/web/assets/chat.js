// botgate web chat client: posts messages to /web/{bot}/messages, reads the SSE answer, renders a safe markdown subset as DOM.
(() => {
  'use strict';
  const RETRY_DELAYS = [1000, 2000, 4000];
  const root = document.documentElement, cfg = root.dataset;
  const bot = cfg.bot || '', base = `/web/${encodeURIComponent(bot)}`;
  const maxChars = Math.max(0, parseInt(cfg.maxChars, 10) || 0);
  const feedbackOn = cfg.feedback !== 'false';
  const $ = (id) => document.getElementById(id);
  const log = $('messages'), typing = $('typing'), input = $('input');
  const sendBtn = $('send'), stopBtn = $('stop'), counter = $('counter');

  const el = (tag, cls, text) => {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    return n;
  };
  const b64url = (n) => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(n))))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  // Code points, as the server counts characters (not UTF-16 units).
  const charCount = (s) => [...s].length;

  const visitor = (() => {
    const key = `botgate:${bot}:visitor`;
    let v = null;
    // Storage may be blocked (privacy modes, third-party iframes): then the id lives in memory only.
    try { v = localStorage.getItem(key); } catch {}
    if (v && /^v-[\w-]{22}$/.test(v)) return v;
    v = 'v-' + b64url(16);
    try { localStorage.setItem(key, v); } catch {}
    return v;
  })();

  // The fragment carries embed mode and the signed identity; it never reaches server logs.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get('embed') === '1') root.classList.add('embedded');
  const [user, expires, signature] = ['user', 'expires', 'signature'].map((k) => hash.get(k));
  const identity = user && expires && signature ? { user, expires: Number(expires), signature } : null;
  const withIdentity = (o) => (identity ? { ...o, identity } : o);

  // ---- markdown: DOM nodes only; every piece of text goes in as a text node.

  function safeUrl(raw) {
    try {
      const u = new URL(raw);
      return ['http:', 'https:', 'mailto:'].includes(u.protocol) ? u.href : null;
    } catch { return null; }
  }

  function addText(parent, s) {
    s.split('\n').forEach((part, i) => {
      if (i) parent.append(el('br'));
      if (part) parent.append(part);
    });
  }

  const INLINE = new RegExp([
    /\\([\\`*_[\]()#+\-.!>~|])/.source, // 1 escaped char
    /`([^`\n]+)`/.source, // 2 code
    /\[([^[\]\n]+)\]\(\s*<?([^\s()<>]+(?:\([^\s()]*\)[^\s()<>]*)*)>?\s*\)/.source, // 3 text, 4 url
    /(https?:\/\/[\w\-.~:/?#[\]@!$&'()*+,;=%]+)/.source, // 5 bare url
    /\*\*(?=\S)([\s\S]*?\S)\*\*|__(?=\S)([\s\S]*?\S)__/.source, // 6, 7 bold
    /\*(?=[^\s*])([\s\S]*?[^\s*])\*|_(?=[^\s_])([\s\S]*?[^\s_])_/.source, // 8, 9 italic
  ].join('|'), 'g');
  const isWord = (c) => /\w/.test(c || '');

  function link(href) {
    const a = el('a');
    a.href = href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    return a;
  }

  function inline(parent, s, depth = 0, noLinks = false) {
    if (depth > 4) return addText(parent, s);
    const re = new RegExp(INLINE.source, 'g');
    let pos = 0, m;
    while ((m = re.exec(s))) {
      let node = null, end = re.lastIndex;
      if (m[1] != null) node = document.createTextNode(m[1]);
      else if (m[2] != null) node = el('code', null, m[2]);
      else if (m[3] != null) {
        const href = !noLinks && safeUrl(m[4]);
        if (href) inline(node = link(href), m[3], depth + 1, true);
      } else if (m[5] != null) {
        // Trailing punctuation and an unbalanced ')' belong to the sentence, not the URL.
        let url = m[5];
        while (/[.,;:!?'"*_~\]]$/.test(url) || (url.endsWith(')') && url.split('(').length < url.split(')').length)) url = url.slice(0, -1);
        const href = !noLinks && !isWord(s[m.index - 1]) && safeUrl(url);
        if (href) {
          end = re.lastIndex = m.index + url.length;
          (node = link(href)).textContent = url;
        }
      } else if (!((m[7] ?? m[9]) != null && (isWord(s[m.index - 1]) || isWord(s[end])))) {
        // (underscores inside snake_case words are not emphasis)
        node = el(m[6] != null || m[7] != null ? 'strong' : 'em');
        inline(node, m[6] ?? m[7] ?? m[8] ?? m[9], depth + 1, noLinks);
      }
      if (!node) { re.lastIndex = m.index + 1; continue; }
      addText(parent, s.slice(pos, m.index));
      parent.append(node);
      pos = end;
    }
    addText(parent, s.slice(pos));
  }

  function renderMarkdown(target, src) {
    const frag = document.createDocumentFragment();
    const lines = String(src).replace(/\r\n?/g, '\n').split('\n');
    let para = null, list = null, item = null;
    const flushItem = () => { if (item) inline(item.li, item.lines.join('\n')); item = null; };
    const flushPara = () => { if (para) inline(frag.appendChild(el('p')), para.join('\n')); para = null; };
    const close = () => { flushPara(); flushItem(); list = null; };
    const block = (node) => { close(); frag.append(node); return node; };

    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      if ((m = /^\s*(```+|~~~+)\s*([\w+#.-]*)/.exec(line))) {
        const code = [];
        // An unclosed fence (still streaming) runs to the end of the text.
        for (i++; i < lines.length && !lines[i].trim().startsWith(m[1]); i++) code.push(lines[i]);
        const c = el('code', null, code.join('\n'));
        if (m[2]) c.dataset.lang = m[2];
        block(el('pre')).append(c);
      } else if (!line.trim()) {
        close();
      } else if ((m = /^\s{0,3}(#{1,6})\s+(.+)$/.exec(line))) {
        inline(block(el('h' + Math.min(m[1].length + 1, 4))), m[2].replace(/\s+#+\s*$/, ''));
      } else if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
        block(el('hr'));
      } else if ((m = /^\s*(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/.exec(line))) {
        flushPara();
        flushItem();
        const tag = m[1] ? 'UL' : 'OL';
        if (list?.tagName !== tag) {
          frag.append(list = el(tag));
          if (m[2] && m[2] !== '1') list.start = parseInt(m[2], 10);
        }
        item = { li: el('li'), lines: [m[3]] };
        list.append(item.li);
      } else if (item && /^\s/.test(line)) {
        item.lines.push(line.trim());
      } else {
        flushItem();
        list = null;
        (para = para || []).push(line.trim());
      }
    }
    close();
    target.replaceChildren(frag);
  }

  // ---- message list

  let stick = true;
  // Follow new content only while the reader is at the bottom; `force` after the user sends.
  log.addEventListener('scroll', () => {
    stick = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }, { passive: true });
  const follow = (force) => {
    if (force) stick = true;
    if (stick) log.scrollTop = log.scrollHeight;
  };
  if (window.ResizeObserver) new ResizeObserver(() => follow()).observe(log);

  function addMsg(cls, text) {
    const m = el('div', 'msg ' + cls);
    if (text != null) m.append(cls === 'msg-notice' ? el('span', null, text) : el('div', 'msg-body', text));
    log.append(m);
    follow();
    return m;
  }
  const notice = (text) => addMsg('msg-notice', text);

  // The bot bubble of the answer in flight; created on its first content.
  const newView = () => ({ m: null, body: null, text: '', raf: 0 });
  function bubble(v) {
    if (!v.m) {
      v.m = addMsg('msg-bot streaming', '');
      v.m.setAttribute('aria-busy', 'true');
      v.body = v.m.firstChild;
      typing.hidden = true;
    }
    return v.m;
  }
  function paint(v) {
    cancelAnimationFrame(v.raf);
    v.raf = 0;
    if (v.body) renderMarkdown(v.body, v.text);
    follow();
  }
  function discard(v) {
    cancelAnimationFrame(v.raf);
    v.m?.remove();
    Object.assign(v, newView());
  }
  function settle(v, cls) {
    paint(v);
    v.m.classList.remove('streaming');
    v.m.removeAttribute('aria-busy');
    if (cls) v.m.classList.add(cls);
  }

  // Returns the run's outcome once the event ends it, else null.
  function onEvent(v, name, d) {
    if (name === 'delta') {
      bubble(v);
      v.text += typeof d.text === 'string' ? d.text : '';
      v.raf = v.raf || requestAnimationFrame(() => paint(v));
    } else if (name === 'done') {
      const m = bubble(v);
      if (typeof d.text === 'string') v.text = d.text;
      settle(v);
      if (d.id) m.dataset.id = d.id;
      if (d.kind) m.dataset.kind = d.kind;
      if (d.feedback === true && feedbackOn && d.id) addFeedback(m, d.id);
      follow();
      return 'ok';
    } else if (name === 'error') {
      if (v.text) settle(v, 'failed');
      else discard(v);
      notice(d.message || '出错了，请稍后再试 / Something went wrong');
      return 'fatal';
    }
    return null;
  }

  // Minimal SSE: "event:"/"data:" lines, a blank line ends an event, ":" lines are keep-alives.
  async function readSse(reader, handle) {
    const dec = new TextDecoder();
    let buf = '', name = '', data = [];
    const line = (l) => {
      if (!(l = l.replace(/\r$/, ''))) {
        let d = null;
        try { d = data.length ? JSON.parse(data.join('\n')) : null; } catch {}
        const ev = name || 'message';
        name = '';
        data = [];
        return d && typeof d === 'object' ? handle(ev, d) : null;
      }
      const [, field, val] = /^([^:]*):? ?([\s\S]*)$/.exec(l); // a comment has an empty field
      if (field === 'event') name = val;
      else if (field === 'data') data.push(val);
      return null;
    };
    for (;;) {
      const { value, done } = await reader.read();
      buf += dec.decode(value, { stream: !done });
      let nl, out;
      while ((nl = buf.indexOf('\n')) >= 0) {
        out = line(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (out) return out;
      }
      // Lenient about a last event without its closing blank line; no done/error means retry.
      if (done) return (buf && line(buf)) || line('') || 'retry';
    }
  }

  async function attempt(req, signal, v) {
    discard(v); // the server restarts the answer from its beginning on every attempt
    typing.hidden = false;
    follow();
    let res;
    try {
      res = await fetch(`${base}/messages`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
        body: JSON.stringify(req),
        signal,
      });
    } catch {
      return signal.aborted ? 'aborted' : 'retry';
    }
    if (res.status >= 500 || (res.ok && !/text\/event-stream/.test(res.headers.get('content-type')))) {
      res.body?.cancel().catch(() => {});
      return 'retry';
    }
    if (!res.ok) {
      let msg = null;
      try { msg = (await res.json()).error; } catch {}
      typing.hidden = true;
      notice(typeof msg === 'string' && msg ? msg
        : res.status === 429 ? '请求太频繁，请稍后再试 / Too many requests'
          : `请求失败（${res.status}）/ Request failed`);
      return 'fatal';
    }
    const reader = res.body.getReader();
    try {
      return await readSse(reader, (name, d) => onEvent(v, name, d));
    } catch {
      return signal.aborted ? 'aborted' : 'retry';
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  let busy = false, ctl = null;
  function setBusy(on) {
    busy = on;
    sendBtn.disabled = on;
    stopBtn.hidden = !on;
    typing.hidden = true;
  }

  async function run(req) {
    setBusy(true);
    ctl = new AbortController();
    const { signal } = ctl, v = newView();
    let outcome = 'retry';
    try {
      for (let i = 0; ; i++) {
        outcome = await attempt(req, signal, v);
        if (outcome !== 'retry' || i >= RETRY_DELAYS.length) break;
        await new Promise((resolve) => {
          const t = setTimeout(resolve, RETRY_DELAYS[i]);
          signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
        });
        if (signal.aborted) { outcome = 'aborted'; break; }
      }
    } catch (e) {
      console.warn('botgate:', e);
    }
    if (outcome === 'aborted') {
      bubble(v);
      settle(v, 'stopped');
    } else if (outcome === 'retry') {
      discard(v);
      const n = notice('连接中断，请重试 / Connection lost');
      const b = n.appendChild(el('button', 'retry', '重试 / Retry'));
      b.type = 'button';
      b.addEventListener('click', () => {
        if (busy) return;
        n.remove();
        run(req); // same id: the server never answers one message twice
      });
    }
    ctl = null;
    setBusy(false);
  }

  function addFeedback(m, id) {
    const box = m.appendChild(el('div', 'feedback'));
    [['fb-up', '👍', '有帮助 / Helpful', 'up'], ['fb-down', '👎', '没帮助 / Not helpful', 'down']].forEach(([cls, glyph, label, rating]) => {
      const b = box.appendChild(el('button', cls, glyph));
      b.type = 'button';
      b.title = label;
      b.setAttribute('aria-label', label);
      b.addEventListener('click', () => {
        b.classList.add('chosen');
        b.setAttribute('aria-pressed', 'true');
        for (const x of box.children) x.disabled = true;
        fetch(`${base}/feedback`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(withIdentity({ visitor, id, rating })),
          keepalive: true,
        }).then((r) => r.ok || console.warn('botgate: feedback', r.status))
          .catch((e) => console.warn('botgate: feedback', e));
      });
    });
  }

  // ---- composer

  function onInput() {
    // Grow via rows, not style.height: the CSP allows no inline styles.
    input.rows = 1;
    const cs = getComputedStyle(input);
    const pad = parseFloat(cs.paddingTop) + parseFloat(cs.paddingBottom) || 0;
    input.rows = Math.max(1, Math.min(5, Math.round((input.scrollHeight - pad) / (parseFloat(cs.lineHeight) || 22))));
    if (!maxChars) return;
    const n = charCount(input.value.trim());
    counter.textContent = `${n} / ${maxChars}`;
    counter.hidden = n < maxChars * 0.8;
    counter.classList.toggle('over', n > maxChars);
  }

  function send() {
    const text = input.value.trim();
    if (busy || !text) return;
    if (maxChars && charCount(text) > maxChars) {
      notice(`消息过长，最多 ${maxChars} 字 / Too long (max ${maxChars} characters)`);
      return follow(true);
    }
    input.value = '';
    onInput();
    addMsg('msg-user', text);
    follow(true);
    run(withIdentity({ visitor, id: 'm-' + b64url(12), text }));
  }

  input.addEventListener('keydown', (e) => {
    // keyCode 229: Safari reports the Enter that confirms an IME candidate with isComposing false.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      send();
    }
  });
  input.addEventListener('input', onInput);
  sendBtn.addEventListener('click', () => { send(); input.focus(); });
  stopBtn.addEventListener('click', () => ctl?.abort());

  if (cfg.welcome) {
    const m = addMsg('msg-bot', '');
    m.dataset.kind = 'welcome';
    renderMarkdown(m.firstChild, cfg.welcome);
  }
  // Don't pop up the phone keyboard or steal focus from the host page of an embed.
  if (!root.classList.contains('embedded') && matchMedia('(pointer: fine)').matches) input.focus();
})();

// botgate embed loader: a floating chat button on the host page that opens /web/{bot} in an iframe panel.
(() => {
  // currentScript is only set during this first synchronous run.
  const me = document.currentScript || document.querySelector('script[src$="/widget.js"]');
  const url = me && new URL(me.src, location.href);
  const path = url && /^(.*\/web\/[^/]+)\/widget\.js$/.exec(url.pathname);
  if (!path || window.botgateWidget) return;
  const d = me.dataset, label = d.title || '在线客服 / Chat';
  // The identity rides in the fragment, which browsers never send to servers.
  const hash = new URLSearchParams({ embed: 1 });
  if (d.user && d.expires && d.signature) ['user', 'expires', 'signature'].forEach((k) => hash.set(k, d[k]));
  const src = `${url.origin}${path[1]}#${hash}`;

  // all:initial keeps the host page's own button/iframe rules out.
  const css = `#botgate-launcher,#botgate-panel,#botgate-frame,#botgate-close{all:initial;box-sizing:border-box}
#botgate-launcher,#botgate-close{display:flex;align-items:center;justify-content:center;cursor:pointer;border-radius:50%}
#botgate-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;background:#2563eb!important;color:#fff;box-shadow:0 4px 14px #0004}
#botgate-launcher:focus-visible,#botgate-close:focus-visible{outline:2px solid #93c5fd}
#botgate-launcher svg,#botgate-close svg{width:24px;height:24px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round}
#botgate-launcher[aria-expanded=true] .bg-chat,#botgate-launcher[aria-expanded=false] .bg-x{display:none}
#botgate-panel{position:fixed;right:20px;bottom:88px;z-index:2147483001;display:block;width:380px;height:600px;max-width:calc(100vw - 40px);max-height:calc(100vh - 108px);border-radius:12px;overflow:hidden;background:#fff;box-shadow:0 8px 30px #0005}
#botgate-panel[hidden]{display:none}
#botgate-frame{display:block;width:100%;height:100%;border:0}
#botgate-close{position:absolute;top:6px;right:6px;width:36px;height:36px;color:#374151;background:#fffd!important}
@media (max-width:599px){#botgate-panel{inset:0;width:100%;height:100%;max-width:none;max-height:none;border-radius:0}}`;

  const make = (tag, id, attrs) => {
    const e = document.createElement(tag);
    e.id = id;
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  };
  const icon = (d, cls) => {
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('class', cls);
    svg.append(document.createElementNS(svg.namespaceURI, 'path'));
    svg.firstChild.setAttribute('d', d);
    return svg;
  };
  const X = 'M6 6l12 12M18 6 6 18';
  let launcher, panel;

  function show(open) {
    if (!launcher) return;
    if (open && !panel) {
      panel = make('div', 'botgate-panel', { role: 'dialog', 'aria-label': label });
      const close = make('button', 'botgate-close', { type: 'button', title: '关闭 / Close', 'aria-label': '关闭 / Close' });
      close.append(icon(X, 'bg-x'));
      close.onclick = () => { show(false); launcher.focus(); };
      panel.append(make('iframe', 'botgate-frame', { title: label, src }), close);
      document.body.append(panel);
    }
    if (panel) panel.hidden = !open;
    launcher.setAttribute('aria-expanded', !!open);
  }

  function init() {
    const style = make('style', 'botgate-style');
    style.textContent = css;
    document.head.append(style);
    launcher = make('button', 'botgate-launcher', { type: 'button', title: label, 'aria-label': label, 'aria-expanded': false });
    launcher.append(icon('M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z', 'bg-chat'), icon(X, 'bg-x'));
    launcher.onclick = () => show(!panel || panel.hidden);
    document.body.append(launcher);
  }

  window.botgateWidget = { open: () => show(true), close: () => show(false) };
  if (document.body) init();
  else document.addEventListener('DOMContentLoaded', init);
})();

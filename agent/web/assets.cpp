#include "web/assets.h"

namespace qabox::web {

std::string_view appCss() {
  return R"CSS(
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#fff; --head:#f5f7fa;
  --ready:#067647; --ready-bg:#dcfae6; --busy:#175cd3; --busy-bg:#d1e9ff;
  --failed:#b42318; --failed-bg:#fee4e2; --sleep:#6941c6; --sleep-bg:#ebe9fe;
  --del:#93370d; --del-bg:#fef0c7; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; gap:1rem; align-items:center; padding:.6rem 1.2rem; border-bottom:1px solid var(--line); background:var(--head); }
header .brand { font-weight:700; font-size:1.1rem; color:var(--fg); text-decoration:none; }
header .domain { color:var(--muted); }
header nav { display:flex; gap:.8rem; }
header .signout { margin-left:auto; display:flex; gap:.5rem; align-items:center; }
main { padding:1rem 1.2rem; }
h1 small, h2 small { color:var(--muted); font-weight:400; font-size:.8em; }
a { color:#175cd3; }
table { border-collapse:collapse; width:100%; margin:.5rem 0 1rem; }
th, td { text-align:left; padding:.35rem .5rem; border-bottom:1px solid var(--line); vertical-align:top; }
thead th { background:var(--head); font-weight:600; white-space:nowrap; }
thead th a { color:var(--fg); text-decoration:none; }
table.details { width:auto; } table.details th { white-space:nowrap; color:var(--muted); font-weight:500; }
.state { display:inline-block; padding:0 .45rem; border-radius:.7rem; font-weight:600; font-size:.85em; }
.state.ready { color:var(--ready); background:var(--ready-bg); }
.state.busy { color:var(--busy); background:var(--busy-bg); }
.state.failed { color:var(--failed); background:var(--failed-bg); }
.state.sleeping { color:var(--sleep); background:var(--sleep-bg); }
.state.deleting { color:var(--del); background:var(--del-bg); }
.flag { font-size:.8em; border:1px solid var(--line); border-radius:.3rem; padding:0 .3rem; }
.flag.stale { border-color:var(--del); color:var(--del); }
.why, .error { color:var(--failed); }
.warning { color:var(--del); }
.muted, .empty { color:var(--muted); }
.notice { background:var(--busy-bg); padding:.5rem .8rem; border-radius:.3rem; }
.filter { display:flex; gap:.5rem; margin:.5rem 0; }
.filter input[type=search] { min-width:22rem; }
input, select, button, .button { font:inherit; padding:.3rem .6rem; border:1px solid #d0d5dd; border-radius:.3rem; background:#fff; color:var(--fg); }
button, .button { cursor:pointer; text-decoration:none; display:inline-block; }
button:hover, .button:hover { background:var(--head); }
.danger { color:var(--failed); border-color:var(--failed); }
.actions { display:flex; gap:.5rem; margin:1rem 0; flex-wrap:wrap; }
.actions form { margin:0; }
pre#log { background:#0f172a; color:#e2e8f0; padding:.8rem; border-radius:.3rem; max-height:70vh; overflow:auto; white-space:pre-wrap; word-break:break-all; }
code { font-size:.9em; }
.login input { min-width:24rem; }
)CSS";
}

std::string_view appJs() {
  return R"JS(
'use strict';
(function () {
  const body = document.body;
  const live = body.dataset.live;
  function replaceFrom(url, el, onGone) {
    return fetch(url, { credentials: 'same-origin', headers: { 'X-Fragment': '1' } })
      .then(function (r) {
        if (r.status === 404 && onGone) { onGone(); return null; }
        if (r.status === 401) { location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (t) { if (t !== null) el.innerHTML = t; });
  }
  function watch(url, onChange) {
    const es = new EventSource(url);
    es.addEventListener('change', onChange);
    es.addEventListener('signedout', function () { es.close(); location.reload(); });
    return es;
  }
  if (live === 'list') {
    const rows = document.getElementById('rows');
    const form = document.getElementById('filter');
    const refresh = function () { replaceFrom('/fragment/rows' + location.search, rows); };
    watch('/events', refresh);
    let timer = null;
    const apply = function () {
      const q = new URLSearchParams(new FormData(form));
      for (const [k, v] of Array.from(q.entries())) { if (!v) q.delete(k); }
      const s = q.toString();
      history.replaceState(null, '', s ? '/?' + s : '/');
      refresh();
    };
    form.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(apply, 200); });
    form.addEventListener('submit', function (e) { e.preventDefault(); apply(); });
  } else if (live === 'env') {
    const ticket = body.dataset.ticket;
    const details = document.getElementById('details');
    const url = '/fragment/env/' + encodeURIComponent(ticket);
    const es = watch('/events', function () {
      replaceFrom(url, details, function () {
        es.close();
        details.insertAdjacentHTML('afterbegin', '<p class="notice" role="status">This environment is gone.</p>');
      });
    });
  } else if (live === 'log') {
    const pre = document.getElementById('log');
    const state = document.getElementById('tail-state');
    const es = new EventSource(body.dataset.stream);
    state.textContent = 'Following live…';
    es.addEventListener('log', function (e) {
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(JSON.parse(e.data)));
      if (stick) pre.scrollTop = pre.scrollHeight;
    });
    es.addEventListener('end', function (e) { state.textContent = JSON.parse(e.data); es.close(); });
    es.addEventListener('signedout', function () { es.close(); location.reload(); });
  }
  document.querySelectorAll('form[data-confirm]').forEach(function (f) {
    f.addEventListener('submit', function (e) { if (!confirm(f.dataset.confirm)) e.preventDefault(); });
  });
})();
)JS";
}

}  // namespace qabox::web

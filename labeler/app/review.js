// The review screen's keyboard and buttons. Loaded once by the app's load event; returns the first command.
//
// Every action is sent with the item that is on screen at the moment of the key press (the
// data-item of #current-item). Keys do nothing while an action is in flight: they work again
// once the next screen is in the page and its image is painted. A held key decides once. The class
// search ('/') opens at any time, so a query typed while an image loads never reaches the decision
// keys; its Enter applies only once the image is painted.
(...inputs) => {
  const nFilters = NFILTERS;
  const L = window.labeler || (window.labeler = {});
  const NAME_KEY = 'labeler-reviewer';
  if (!L.installed) {
    L.installed = true;
    L.busy = false;
    L.digits = '';
    L.pending = null;
    const $ = (sel) => document.querySelector(sel);
    const vocab = () => {
      if (!L.vocab) { const el = $('#lab-vocab'); L.vocab = el ? JSON.parse(el.dataset.vocab) : []; }
      return L.vocab;  // [[code, label], ...]
    };
    const say = (text) => { const el = $('#lab-status'); if (el) el.textContent = text || ''; };
    L.name = () => localStorage.getItem(NAME_KEY) || '';
    L.current = () => { const el = $('#current-item'); return el ? el.dataset.item || null : null; };
    L.command = (cmd) => JSON.stringify(Object.assign({item: L.current(), reviewer: L.name()}, cmd));
    L.take = () => { const cmd = L.pending; L.pending = null; return cmd || L.command({action: 'show'}); };
    L.send = (cmd, force, button) => {
      if (L.busy && !force) { say('wait: the next image is still loading'); return false; }
      const group = $('#whole-group');
      L.pending = L.command(Object.assign({group: !!(group && group.checked)}, cmd));
      L.busy = true;
      L.busySeq = ($('#current-item') || {dataset: {}}).dataset.seq;
      clearTimeout(L.safety);
      L.safety = setTimeout(() => { L.busy = false; say(''); }, 10000);  // a server error leaves the screen as it was
      const go = document.getElementById(button || 'lab-go');
      if (go) go.click();
      return true;
    };
    const ready = () => {  // the new screen is in the page: free the keys once its image is painted
      const el = $('#current-item');
      if (!el || el.dataset.seq === L.busySeq) return;
      L.busySeq = el.dataset.seq;
      if (!L.loaded) {  // the page's first screen: a name confirmed before it arrived is sent now, after it
        L.loaded = true;
        if (L.afterLoad) { const send = L.afterLoad; L.afterLoad = null; setTimeout(send, 0); }
      }
      const reviewer = el.dataset.reviewer;
      const box = $('#lab-name');
      if (reviewer && box && document.activeElement !== box) box.value = reviewer;
      const done = () => requestAnimationFrame(() => requestAnimationFrame(() => {
        L.busy = false; clearTimeout(L.safety); say('');
      }));
      L.applyView();
      const img = el.querySelector('img.lab-main');
      if (!img || img.complete) done();
      else { img.addEventListener('load', done, {once: true}); img.addEventListener('error', done, {once: true}); }
    };
    // -- the garment's box: `b` cycles box drawn -> cropped to it -> plain image, for the image and its neighbours
    const VIEWS = ['box', 'crop', 'full'];
    L.view = () => localStorage.getItem('labeler.view') || 'box';
    L.applyView = () => {
      const view = L.view();
      document.querySelectorAll('img[data-lab-img]').forEach((img) => {
        const want = `/labeler/image/${img.dataset.labImg}?view=${view}`;
        if (img.getAttribute('src') !== want) img.setAttribute('src', want);
      });
    };
    L.cycleView = () => {
      const next = VIEWS[(VIEWS.indexOf(L.view()) + 1) % VIEWS.length];
      localStorage.setItem('labeler.view', next);
      L.applyView();
      say({box: 'garment box drawn (where the image has one)', crop: 'cropped to the garment box', full: 'whole image, no box'}[next]);
    };
    new MutationObserver(ready).observe(document.body, {childList: true, subtree: true, attributes: true, attributeFilter: ['data-seq']});

    // -- class search: opens empty, filters as you type, Enter applies the highlighted class, Escape cancels
    const search = {open: false, matches: [], at: 0};
    const renderSearch = () => {
      const q = $('#lab-search-input').value.trim().toLowerCase();
      search.matches = vocab().filter(([code, label]) => !q || label.toLowerCase().includes(q) || code.startsWith(q));
      search.at = Math.min(search.at, Math.max(search.matches.length - 1, 0));
      $('#lab-search-list').innerHTML = search.matches.length
        ? search.matches.map(([code, label], i) =>
            `<li data-label="${label.replace(/"/g, '&quot;')}" class="${i === search.at ? 'lab-hl' : ''}"><kbd>${code}</kbd> ${label.replace(/</g, '&lt;')}</li>`).join('')
        : '<li class="lab-none">no class matches</li>';
    };
    L.openSearch = () => {  // opens even while the next image loads: what is typed then is a query, not keys
      const box = $('#lab-search');
      if (!box) return;
      box.hidden = false; search.open = true; search.at = 0;
      const input = $('#lab-search-input');
      input.value = '';
      renderSearch();
      input.focus();
    };
    const closeSearch = () => { const box = $('#lab-search'); if (box) box.hidden = true; search.open = false; };
    const applySearch = (label) => {
      if (!label) { say('no class chosen'); return; }
      if (L.busy) { say('wait: the next image is still loading; press Enter again once it shows'); return; }
      closeSearch();
      L.send({action: 'relabel', label: label});
    };
    document.addEventListener('input', (e) => { if (e.target && e.target.id === 'lab-search-input') { search.at = 0; renderSearch(); } });
    document.addEventListener('keydown', (e) => {
      if (!search.open || !e.target || e.target.id !== 'lab-search-input') return;
      if (e.key === 'Escape') { e.preventDefault(); closeSearch(); say('search cancelled'); }
      else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        const n = search.matches.length;
        if (n) { search.at = (search.at + (e.key === 'ArrowDown' ? 1 : n - 1)) % n; renderSearch(); }
      } else if (e.key === 'Enter') {
        e.preventDefault(); e.stopPropagation();
        if (!e.repeat) { const m = search.matches[search.at]; applySearch(m ? m[1] : null); }
      }
    }, true);

    // -- the name: asked once per browser, kept in localStorage; nothing is claimed until Enter
    document.addEventListener('keydown', (e) => {
      if (!e.target || e.target.id !== 'lab-name') return;
      if (e.key === 'Enter') {
        e.preventDefault();
        const name = e.target.value.trim();
        if (!name) { say('type your name first'); return; }
        localStorage.setItem(NAME_KEY, name);
        e.target.blur();
        const start = () => L.send({action: 'show'}, true);
        if (L.loaded) start(); else L.afterLoad = start;  // never race the page's own first request
      } else if (e.key === 'Escape') { e.target.value = L.name(); e.target.blur(); }
    }, true);

    // -- decision keys
    const keys = {Enter: 'accept', k: 'keep', s: 'skip', u: 'undo', Backspace: 'undo', x: 'not_garment', m: 'several_garments', q: 'unusable'};
    const act = (name, data) => {
      if (name === 'search') return L.openSearch();
      if (name === 'accept' && !document.querySelector("[data-act='accept']")) name = 'keep';  // the model agrees
      if (['not_garment', 'several_garments', 'unusable'].includes(name)) return L.send({action: 'remove', reason: name});
      if (name === 'relabel') return L.send({action: 'relabel', label: data.label});
      if (name === 'remove') return L.send({action: 'remove', reason: data.reason});
      if (name === 'clear') return L.send({action: 'clear'}, true, 'lab-clear');
      return L.send({action: name});
    };
    document.addEventListener('keydown', (e) => {
      const t = e.target;
      if (search.open || (t && t.id === 'lab-name')) return;
      if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) {
        if (e.key === 'Escape') t.blur();
        return;
      }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const known = e.key === '/' || keys[e.key] || /^[0-9]$/.test(e.key) || 'zgcbEscape'.includes(e.key);
      if (!known) return;
      e.preventDefault();
      if (e.repeat) return;  // a held key decides once
      if (!L.name()) { say('type your name in the box above and press Enter first'); $('#lab-name') && $('#lab-name').focus(); return; }
      if (e.key === '/') return L.openSearch();
      if (e.key === 'Escape') { L.digits = ''; say(''); return; }
      if (e.key === 'z') { const m = $('#current-item'); if (m) m.classList.toggle('lab-zoomed'); return; }
      if (e.key === 'b') { return L.cycleView(); }
      if (e.key === 'g') { const g = $('#whole-group'); if (g) g.checked = !g.checked; return; }
      if (e.key === 'c') return act('clear');
      if (/^[0-9]$/.test(e.key)) {
        const width = vocab().length ? vocab()[0][0].length : 1;
        L.digits += e.key;
        if (L.digits.length < width) {
          const options = vocab().filter(([code]) => code.startsWith(L.digits)).map(([c, l]) => `${c} ${l}`);
          say(`class ${L.digits}_: ${options.join(', ') || 'none'} (Escape cancels)`);
          return;
        }
        const code = L.digits; L.digits = '';
        const hit = vocab().find(([c]) => c === code);
        if (!hit) { say(`no class ${code}`); return; }
        return act('relabel', {label: hit[1]});
      }
      act(keys[e.key]);
    });
    document.addEventListener('click', (e) => {
      const b = e.target.closest && e.target.closest('[data-act]');
      if (!b) return;
      e.preventDefault();
      if (!L.name()) { say('type your name in the box above and press Enter first'); return; }
      act(b.dataset.act, b.dataset);
    });
    document.addEventListener('click', (e) => {
      const li = e.target.closest && e.target.closest('#lab-search-list li[data-label]');
      if (li) applySearch(li.dataset.label);
    });
    document.addEventListener('click', (e) => { if (e.target && e.target.classList && e.target.classList.contains('lab-main')) { const m = $('#current-item'); if (m) m.classList.toggle('lab-zoomed'); } });
  }
  const box = document.querySelector('#lab-name');
  if (box && !box.value) box.value = L.name();
  return [L.command({action: 'show'}), ...inputs.slice(1, 1 + nFilters)];
}

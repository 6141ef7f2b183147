"""The explorer page's behaviour in the browser: one JavaScript library (``E``) prepended to every
callback of the page (bokeh callbacks share no scope). It switches views and colours, draws the
zoom labels, searches, and lists a clicked point's nearest neighbours from the embedded arrays.
``__CFG__`` is replaced by the page's configuration (``explorer_page.build_page``)."""

PAGE_JS = r"""
const cfg = __CFG__;
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
const E = {};
E.viewId = function () {
    const vals = selects.map((s) => s.value);
    for (const [vid, v] of Object.entries(cfg.views)) {
        if (v.every((x, i) => x === vals[i])) return vid;
    }
    return null;
};
E.onView = function (changed) {
    if (window.__bertlensBusy) return;
    let vid = E.viewId();
    if (vid === null) {
        // No projection for this combination: keep the changed value, take the first view with it.
        const d = selects.indexOf(changed);
        vid = Object.keys(cfg.views).find((id) => cfg.views[id][d] === changed.value);
        window.__bertlensBusy = true;
        try {
            selects.forEach((s, i) => { s.value = cfg.views[vid][i]; });
        } finally {
            window.__bertlensBusy = false;
        }
    }
    E.applyView(vid);
};
E.cols = function (p, vid) {
    const v = cfg.viewIndex[vid];
    return ['x' + p + '_' + v, 'y' + p + '_' + v];
};
// a renderer's selection / nonselection / hover glyphs carry their own field specs
E.glyphs = (r) => [r.glyph, r.selection_glyph, r.nonselection_glyph, r.hover_glyph,
                   r.muted_glyph].filter((g) => g !== null && typeof g === 'object');
E.applyView = function (vid) {
    mains.forEach((r, p) => {
        const [xc, yc] = E.cols(p, vid);
        E.glyphs(r).forEach((g) => { g.x = {field: xc}; g.y = {field: yc}; });
    });
    const v = cfg.viewIndex[vid];
    rasters.forEach((list) => list.forEach((r, i) => { r.visible = i === v; }));
    E.applyColour();
    E.refreshSearch();
    E.showNeighbours();
    E.updateLabels();
    window.bertlensView = vid;
};
// labels on the map: a view's candidates come ordered by zoom level, then priority; those whose
// level the zoom has reached and that lie in the visible ranges are drawn (at most maxLabels)
E.updateLabels = function () {
    const vid = E.viewId() || Object.keys(cfg.views)[0];
    const v = cfg.viewIndex[vid];
    const shown = [];
    figs.forEach((fig, p) => {
        const xr = fig.x_range, yr = fig.y_range;
        const [sx, sy] = cfg.spans[p][vid];
        const zoom = Math.min(sx / Math.max(xr.end - xr.start, 1e-12),
                              sy / Math.max(yr.end - yr.start, 1e-12));
        const level = Math.floor(Math.log2(Math.max(zoom, 1e-9)) + 0.35);
        const [xc, yc] = E.cols(p, vid);
        const X = src.data[xc], Y = src.data[yc], T = src.data[cfg.label];
        const R = cands[p][v].data.r, L = cands[p][v].data.l;
        const out = {x: [], y: [], text: []};
        for (let j = 0; j < R.length && L[j] <= level && out.x.length < cfg.maxLabels; j++) {
            const i = R[j];
            const x = X[i], y = Y[i];
            if (x < xr.start || x > xr.end || y < yr.start || y > yr.end) continue;
            const t = String(T[i]);
            out.x.push(x);
            out.y.push(y);
            out.text.push(t.length > cfg.labelChars ? t.slice(0, cfg.labelChars) + '…' : t);
        }
        labels[p].data = out;
        // the density image has a fixed resolution: fainter once its pixels grow large
        rasters[p].forEach((r) => { r.glyph.global_alpha = level >= 3 ? 0.35 : 1.0; });
        shown.push({level: level, labels: out.text.slice()});
    });
    window.bertlensLabels = shown;
};
E.applyColour = function () {
    const name = colour.value;
    const c = cfg.colours[name];
    const vid = E.viewId() || Object.keys(cfg.views)[0];
    mapper.palette = c.palette || cfg.viridis;
    mapper.low = c.low;
    mapper.high = c.high;
    mains.forEach((r) => {
        [r.glyph, r.selection_glyph, r.nonselection_glyph, r.muted_glyph].forEach((g) => {
            if (g !== null && typeof g === 'object') g.fill_color = {field: c.cols[vid], transform: mapper};
        });
    });
    bar.visible = !c.categories;
    bar.title = name;
    if (c.categories) {
        legend.text = '<div style="font-size:12px"><b>' + esc(name) + '</b><br>' + c.categories.map(
            (cat, i) => '<span style="white-space:nowrap;margin-right:8px"><span style="display:' +
            'inline-block;width:10px;height:10px;background:' + c.palette[i] + '"></span> ' +
            esc(cat) + '</span>').join(' ') + '</div>';
    } else {
        legend.text = '';
    }
};
E.labelOf = function (pos) {
    return pos < cfg.n ? src.data[cfg.label][pos] : aux.data.label[pos - cfg.n];
};
E.select = function (pos) {
    src.selected.indices = [pos];
};
window.bertlensSelect = E.select;
E.refreshSearch = function (hits, labels) {
    const vid = E.viewId();
    hls.forEach((h, p) => {
        const idx = hits || Array.from(h.data.i || []);
        const lab = labels || Array.from(h.data.label || []);
        const [xc, yc] = E.cols(p, vid);
        h.data = {i: idx, x: idx.map((i) => src.data[xc][i]), y: idx.map((i) => src.data[yc][i]),
                  label: lab};
    });
};
E.search = function () {
    const raw = search.value.trim();
    const exact = raw.length > 1 && raw.startsWith('"') && raw.endsWith('"');
    const q = (exact ? raw.slice(1, -1) : raw).toLowerCase();
    const lab = src.data[cfg.label];
    const hits = [];
    if (q.length) {
        for (let i = 0; i < lab.length; i++) {
            const s = String(lab[i]).toLowerCase();
            if (exact ? s === q : s.includes(q)) hits.push(i);
        }
        // exact matches first, then shorter labels
        hits.sort((a, b) => {
            const ea = String(lab[a]).toLowerCase() === q, eb = String(lab[b]).toLowerCase() === q;
            return (eb - ea) || (String(lab[a]).length - String(lab[b]).length) || (a - b);
        });
    }
    const showLabels = hits.length <= 60;
    E.refreshSearch(hits, hits.map((i) => showLabels ? String(lab[i]).slice(0, 30) : ''));
    mains.forEach((r) => { r.glyph.fill_alpha = q.length ? 0.15 : 0.7; });
    let text = '';
    if (q.length) {
        text = '<p><b>' + hits.length + '</b> ' + cfg.what + '(s) match "' + esc(q) + '"' +
            (hits.length ? ' (click one to list its neighbours):' : '') + '</p>';
        text += hits.slice(0, 40).map((i) => '<a href="#" style="margin-right:6px" ' +
            'onclick="window.bertlensSelect(' + i + ');return false;">' +
            esc(String(lab[i]).slice(0, 80)) + '</a>').join(' ');
        if (hits.length > 40) text += ' …';
    }
    status.text = text;
    window.bertlensLastSearch = {query: q, hits: hits.length,
                                 labels: hits.slice(0, 20).map((i) => String(lab[i]))};
};
// a region selected with the box or lasso tool: the shared source marks it in every map
E.showRegion = function (idx) {
    const lab = src.data[cfg.label];
    const names = cfg.paneTitles.map(esc).join(' and ');
    panel.text = '<p><b>' + idx.length + '</b> ' + esc(cfg.what) + 's selected; highlighted in ' +
        names + ' (shift + drag adds, Esc or reset clears).</p>' +
        idx.slice(0, 30).map((i) => '<a href="#" style="margin-right:6px" onclick="window.' +
        'bertlensSelect(' + i + ');return false;">' + esc(String(lab[i]).slice(0, 60)) + '</a>')
        .join(' ') + (idx.length > 30 ? ' …' : '');
    window.bertlensLastRegion = {count: idx.length, indices: Array.from(idx.slice(0, 5000)),
                                 labels: idx.slice(0, 20).map((i) => String(lab[i]))};
};
E.showNeighbours = function () {
    const i = src.selected.indices.length ? src.selected.indices[0] : null;
    const vid = E.viewId();
    if (i === null || vid === null || src.selected.indices.length > 1) {
        sels.forEach((s) => { s.data = {x: [], y: [], label: [], size: []}; });
        segs.forEach((s) => { s.data = {x0: [], y0: [], x1: [], y1: []}; });
        if (src.selected.indices.length > 1) E.showRegion(src.selected.indices);
        return;
    }
    const k = cfg.k;
    const lists = cfg.paneNN.map((m, p) => {
        const set = m[vid];
        const ia = nn.data['i_' + set], da = nn.data['d_' + set];
        const out = [];
        for (let r = 0; r < k; r++) {
            const pos = ia[i * k + r];
            out.push({pos: pos, label: E.labelOf(pos), distance: da[i * k + r] / cfg.scale,
                      shown: pos < cfg.n});
        }
        return out;
    });
    lists.forEach((list, p) => {
        const [xc, yc] = E.cols(p, vid);
        const X = src.data[xc], Y = src.data[yc];
        const on = list.filter((e) => e.shown);
        sels[p].data = {
            x: [X[i]].concat(on.map((e) => X[e.pos])),
            y: [Y[i]].concat(on.map((e) => Y[e.pos])),
            label: [String(E.labelOf(i)).slice(0, 40)].concat(on.map((e) => String(e.label).slice(0, 30))),
            size: [14].concat(on.map(() => 8)),
        };
        segs[p].data = {x0: on.map(() => X[i]), y0: on.map(() => Y[i]),
                        x1: on.map((e) => X[e.pos]), y1: on.map((e) => Y[e.pos])};
    });
    const info = cfg.hover.map(([name, col]) => '<b>' + esc(name) + '</b>: ' +
        esc(String(src.data[col][i]).slice(0, 300))).join('<br>');
    let shared = null;
    if (lists.length === 2) {
        const a = new Set(lists[0].map((e) => e.pos));
        const both = lists[1].filter((e) => a.has(e.pos)).length;
        shared = {both: both, jaccard: both / (2 * k - both)};
    }
    const tables = lists.map((list, p) => {
        const other = lists.length === 2 ? new Set(lists[1 - p].map((e) => e.pos)) : null;
        const rows = list.map((e, r) => '<tr' + (e.shown ? '' : ' style="color:#888"') + '><td>' +
            (r + 1) + '</td><td>' + (e.shown ? '<a href="#" onclick="window.bertlensSelect(' +
            e.pos + ');return false;">' : '') + ((other && other.has(e.pos)) ? '<b>' : '') +
            esc(String(e.label).slice(0, 120)) + ((other && other.has(e.pos)) ? '</b>' : '') +
            (e.shown ? '</a>' : ' (not shown)') + '</td><td>' + e.distance.toFixed(4) +
            '</td></tr>').join('');
        return '<div style="display:inline-block;vertical-align:top;margin-right:18px;' +
            'max-width:' + (lists.length === 2 ? 540 : 400) + 'px"><p><b>' + esc(cfg.paneTitles[p]) +
            '</b>: ' + k + ' nearest (' + esc(cfg.paneNN[p][vid]) + ', cosine distance)</p>' +
            '<table class="bertlens-nn" style="border-collapse:collapse;font-size:12px">' +
            '<tr><th>#</th><th>' + esc(cfg.what) + '</th><th>distance</th></tr>' + rows +
            '</table></div>';
    }).join('');
    panel.text = '<div style="font-size:13px">' + info + '</div>' +
        (shared ? '<p>shared neighbours: <b>' + shared.both + '</b> of ' + k + ' (Jaccard ' +
         shared.jaccard.toFixed(2) + '; shared ones in bold)</p>' : '') + tables;
    window.bertlensLastSelection = {index: i, label: String(E.labelOf(i)), view: vid,
        neighbors: lists.map((l) => l.map((e) => ({label: String(e.label), distance: e.distance,
                                                   shown: e.shown}))),
        shared: shared};
};
"""

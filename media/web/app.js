// Page logic of telegate's built-in visit client (lobby, waiting room, call).
// Everything goes through the module at /.telegate/visit.js.
import * as visit from '/.telegate/visit.js';

const $ = sel => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function say(sel, text) {
  const e = $(sel);
  if (e) e.textContent = text;
}

function fmtTime(s) {
  if (!s) return '';
  return new Date(s).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
}

// ---------------------------------------------------------------- lobby ---

async function lobby() {
  let current = null;
  const form = $('#create-form');
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    say('#lobby-status', 'Creating…');
    try {
      const v = await visit.createVisit({
        title: $('#visit-title').value,
        scheduled: $('#visit-scheduled').value || undefined,
        participants: Number($('#visit-participants').value) || undefined,
      });
      current = v.id;
      showInvite(v.invite);
      say('#lobby-status', 'Visit created. Send the invite link to the patient.');
      await refresh();
    } catch (err) {
      failed(err);
    }
  });
  $('#copy-invite').addEventListener('click', async () => {
    const input = $('#invite-link');
    try {
      await navigator.clipboard.writeText(input.value);
      say('#lobby-status', 'Invite link copied.');
    } catch (_) {
      input.select();
      say('#lobby-status', 'Select the link and copy it.');
    }
  });
  $('#new-invite').addEventListener('click', async () => {
    if (!current) return;
    try { showInvite(await visit.reissueInvite(current)); } catch (err) { failed(err); }
  });
  $('#end-visit').addEventListener('click', async () => {
    if (!current) return;
    try { await visit.endVisit(current); current = null; await refresh(); say('#lobby-status', 'Visit ended.'); } catch (err) { failed(err); }
  });

  function showInvite(inv) {
    $('#invite').hidden = false;
    $('#invite-link').value = inv.url;
    say('#invite-expires', 'Valid until ' + fmtTime(inv.expires));
  }

  async function act(fn, pid) {
    try { await fn(current, pid); await refresh(); } catch (err) { failed(err); }
  }

  let poll = null;
  // Signed out (idle timeout, sign-out elsewhere): take the patients'
  // names off the screen, stop polling and offer to sign in again.
  function signedOut() {
    clearInterval(poll);
    const again = el('a', { class: 'button', href: '/.telegate/login?rd=' + encodeURIComponent('/.telegate/visits/lobby'), text: 'Sign in again' });
    const card = el('section', { class: 'card', id: 'signed-out', 'data-testid': 'signed-out', role: 'alert' },
      el('h2', { text: 'You were signed out' }),
      el('p', { text: 'This page was left unused, so you were signed out to protect patient information. Visits stay open.' }),
      again);
    $('main').replaceChildren(card);
  }

  function failed(err) {
    if (err.status === 401) signedOut();
    else say('#lobby-status', err.message);
  }

  async function refresh(opts = {}) {
    let visits;
    try {
      visits = await visit.listVisits(opts);
    } catch (err) {
      failed(err);
      return;
    }
    const list = $('#visit-list');
    list.replaceChildren();
    for (const v of visits) {
      const b = el('button', { type: 'button', 'data-visit': v.id, 'aria-pressed': String(v.id === current), text: `${v.title} · ${v.waiting} waiting` });
      b.addEventListener('click', () => { current = v.id; $('#invite').hidden = true; refresh(); });
      list.append(el('li', {}, b));
    }
    if (!current && visits.length) current = visits[visits.length - 1].id;
    const v = visits.find(x => x.id === current);
    $('#current-visit').hidden = !v;
    if (!v) return;
    say('#current-title', v.title);
    say('#current-times', (v.scheduled ? 'Scheduled ' + fmtTime(v.scheduled) + ' · ' : '') + (v.ends_at ? 'Ends by ' + fmtTime(v.ends_at) : 'Not started'));
    $('#start-call').href = `/.telegate/visits/${v.id}/call`;
    const waiting = $('#waiting-list');
    const inCall = $('#participant-list');
    waiting.replaceChildren();
    inCall.replaceChildren();
    for (const p of v.participants || []) {
      if (p.state === 'waiting') {
        const admit = el('button', { type: 'button', 'data-action': 'admit', 'data-participant': p.id, 'data-testid': 'admit', text: 'Admit' });
        const dec = el('button', { type: 'button', 'data-action': 'decline', 'data-participant': p.id, 'data-testid': 'decline', class: 'secondary', text: 'Decline' });
        admit.setAttribute('aria-label', `Admit ${p.name}`);
        dec.setAttribute('aria-label', `Decline ${p.name}`);
        admit.addEventListener('click', () => act(visit.admit, p.id));
        dec.addEventListener('click', () => act(visit.decline, p.id));
        waiting.append(el('li', { 'data-participant': p.id }, el('span', { class: 'name', text: p.name }), admit, dec));
      } else if (p.state === 'admitted' && p.role !== 'host') {
        const rm = el('button', { type: 'button', 'data-action': 'remove', 'data-participant': p.id, class: 'danger', text: 'Remove' });
        rm.setAttribute('aria-label', `Remove ${p.name}`);
        rm.addEventListener('click', () => act(visit.remove, p.id));
        inCall.append(el('li', { 'data-participant': p.id }, el('span', { class: 'name', text: p.name }), rm));
      }
    }
    if (!waiting.children.length) waiting.append(el('li', { class: 'empty', text: 'Nobody is waiting.' }));
  }

  await refresh();
  // The poll is the page's own doing, not the clinician's: it does not
  // count as use of the session (see visit.listVisits).
  poll = setInterval(() => refresh({ background: true }), 2000);
}

// --------------------------------------------------------- waiting room ---

async function join() {
  const params = new URLSearchParams(location.search);
  const invite = params.get('invite');
  let id = params.get('visit');
  try {
    if (invite) {
      const v = await visit.joinVisit(invite);
      id = v.id;
      // Keep the invite out of the address bar and history from here on.
      history.replaceState(null, '', `/.telegate/visits/join?visit=${encodeURIComponent(id)}`);
    }
    if (!id) throw new Error('This link is incomplete. Open the invite link you received.');
    say('#waiting-status', 'You are in the waiting room. The clinician will let you in shortly.');
    const v = await visit.waitForAdmission(id, {
      onUpdate: () => {},
    });
    say('#waiting-status', 'You have been admitted. Joining…');
    location.assign(v.call_url);
  } catch (err) {
    $('#waiting').classList.add('refused');
    // Nothing to wait for: drop the spinner and the "keep this page open" hint.
    for (const n of document.querySelectorAll('#waiting .spinner, #waiting .hint')) n.hidden = true;
    say('#waiting-status', err.message);
  }
}

// ----------------------------------------------------------------- call ---

async function call() {
  const id = location.pathname.split('/')[3];
  const remote = $('#remote-video');
  const local = $('#local-video');
  let stream = null;
  say('#call-status', 'Starting camera…');
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: { ideal: 640 }, height: { ideal: 480 } } });
    local.srcObject = stream;
  } catch (err) {
    say('#call-status', 'Camera or microphone unavailable: ' + err.name + '. You can still see and hear the others.');
  }
  const c = new visit.Call(id, { localStream: stream });
  let firstPeer = null;
  const videos = new Map();

  c.addEventListener('welcome', e => {
    say('#call-status', e.detail.peers.length ? 'Connecting…' : 'Waiting for the other participant…');
    for (const p of e.detail.peers) say('#remote-name', p.name);
  });
  c.addEventListener('peer', e => {
    say('#remote-name', e.detail.peer.name);
    say('#call-status', 'Connecting…');
  });
  c.addEventListener('remotestream', e => {
    const { peerId, stream: s } = e.detail;
    if (!firstPeer || firstPeer === peerId || !c.pcs.has(firstPeer)) firstPeer = peerId;
    let v = peerId === firstPeer ? remote : videos.get(peerId);
    if (!v) {
      v = el('video', { autoplay: '', playsinline: '', class: 'remote', 'aria-label': 'Participant video' });
      $('#remote-videos').append(v);
      videos.set(peerId, v);
    }
    if (v.srcObject !== s) v.srcObject = s;
  });
  c.addEventListener('state', e => {
    if (e.detail.peerId !== firstPeer && firstPeer) return;
    const st = e.detail.state;
    say('#connection-state', st);
    $('#connection-state').dataset.state = st;
    say('#call-status', { connected: 'Connected.', connecting: 'Connecting…', failed: 'Connection failed; retrying…', disconnected: 'Connection interrupted…' }[st] || '');
  });
  c.addEventListener('code', e => {
    if (firstPeer && e.detail.peerId !== firstPeer) return;
    const code = e.detail.code;
    const sc = $('#security-code');
    sc.textContent = code.slice(0, 3) + ' ' + code.slice(3);
    sc.dataset.code = code;
  });
  c.addEventListener('stats', e => {
    if (firstPeer && e.detail.peerId !== firstPeer) return;
    const s = e.detail.stats;
    const box = $('#stats');
    const prev = Number(box.dataset.inboundVideoBytes || 0);
    box.dataset.inboundVideoBytes = String(s.inboundVideoBytes);
    box.dataset.localCandidateType = s.localCandidateType;
    box.dataset.remoteCandidateType = s.remoteCandidateType;
    say('#candidate-type', s.localCandidateType || '–');
    const kbps = Math.max(0, Math.round((s.inboundVideoBytes - prev) * 8 / 1000));
    const rtt = s.rtt == null ? '–' : Math.round(s.rtt * 1000) + ' ms';
    let quality = 'good';
    if (s.rtt > 0.3 || s.packetsLost > 50) quality = 'fair';
    if (s.rtt > 0.8 || kbps < 50) quality = 'poor';
    box.dataset.quality = quality;
    say('#quality', `${quality} · ${kbps} kbit/s · RTT ${rtt} · lost ${s.packetsLost}` + (s.frameWidth ? ` · ${s.frameWidth}p` : ''));
  });
  c.addEventListener('peerleft', e => {
    const v = videos.get(e.detail.peerId);
    if (v) { v.remove(); videos.delete(e.detail.peerId); }
    if (e.detail.peerId === firstPeer) {
      remote.srcObject = null;
      say('#connection-state', 'waiting');
      say('#security-code', '––– –––');
      delete $('#security-code').dataset.code;
      say('#call-status', 'The other participant left. Waiting…');
    }
  });
  c.addEventListener('reconnecting', e => {
    say('#call-status', e.detail.reason || 'Reconnecting…');
  });
  c.addEventListener('closed', e => {
    const msg = {
      ended: 'The visit has ended.', removed: 'You were removed from the visit.', 'signed-out': 'You were signed out.',
      replaced: 'This visit was opened in another window.', refused: 'The connection was refused for safety. Reload to try again.',
      hangup: 'You left the call.',
    }[e.detail.why] || 'The call was closed.';
    say('#call-status', msg);
    say('#connection-state', 'closed');
    $('#connection-state').dataset.state = 'closed';
    for (const b of document.querySelectorAll('#controls button')) b.disabled = true;
  });

  $('#mute').addEventListener('click', ev => {
    const on = ev.currentTarget.getAttribute('aria-pressed') !== 'true';
    ev.currentTarget.setAttribute('aria-pressed', String(on));
    ev.currentTarget.textContent = on ? 'Unmute' : 'Mute';
    c.setMuted(on);
  });
  $('#camera').addEventListener('click', ev => {
    const off = ev.currentTarget.getAttribute('aria-pressed') !== 'true';
    ev.currentTarget.setAttribute('aria-pressed', String(off));
    ev.currentTarget.textContent = off ? 'Camera on' : 'Camera off';
    c.setCamera(!off);
  });
  $('#hangup').addEventListener('click', () => c.hangUp());

  try {
    await c.start();
  } catch (err) {
    say('#call-status', err.message || 'Could not start the call.');
  }
}

const page = document.body.dataset.page;
({ lobby, join, call })[page]?.();

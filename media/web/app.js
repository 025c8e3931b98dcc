// Page logic of telegate's built-in visit client (lobby, waiting room, call).
// Everything goes through the module at /.telegate/visit.js; every word
// shown comes from telegate's one catalogue, through strings.js.
import * as visit from '/.telegate/visit.js';
import { t, concat, when, errorText, mediaText, setLanguage, language, languageNames, oldLanguageStorageKey } from '/.telegate/visit/strings.js';

const $ = sel => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'text') put(e, v);
    else if (k === 'aria-label') putLabel(e, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// shown remembers, per element, the words (strings.js Words, or a fixed
// string such as a name) the page last gave its text and its aria-label,
// and the text they gave then: a language switch says each again
// (applyLanguage) unless the page has put something else there since
// without words (a security code's digits).
const shown = new WeakMap(); // element → { text: {w, as}, label: {w, as} }
function remember(e, what, w, as) { shown.set(e, { ...shown.get(e), [what]: { w, as } }); }

// put makes w (Words, a string) e's text, remembered for a switch.
function put(e, w) {
  e.textContent = String(w ?? '');
  remember(e, 'text', w, e.textContent);
}

// putLabel makes w e's aria-label, remembered for a switch.
function putLabel(e, w) {
  e.setAttribute('aria-label', String(w ?? ''));
  remember(e, 'label', w, e.getAttribute('aria-label'));
}

function say(sel, w) {
  const e = $(sel);
  if (e) put(e, w);
}

// visitTitle is what a visit is called: its title, or, for one made
// without, the catalogue's words for a visit in the reader's language.
const visitTitle = v => v.title || t('visit.untitled');

// nameOf is what a participant p ({name, role, label, …}) is called:
// their name, or, for one without (a clinician whose visit a service made
// without an owner name, a patient whose provider sends no name claim),
// the catalogue's word for what they are in the visit, in the reader's
// language.
const nameOf = p => (p && p.name) || t(!p ? 'name.other' : p.role === 'host' ? 'label.clinician' : 'label.' + (p.label || 'patient'));

// renderPeople fills the waiting list (Admit, Decline; who is away) and
// the list of admitted guests (Remove) of visit v, for the lobby and the
// host's call page alike. act(fn, participantId) runs a decision.
function renderPeople(v, waiting, inCall, act) {
  waiting.replaceChildren();
  if (inCall) inCall.replaceChildren();
  for (const p of v.participants || []) {
    if (p.state === 'waiting') {
      const li = el('li', { 'data-participant': p.id, 'data-away': String(!!p.away) }, el('span', { class: 'name', text: nameOf(p) }),
        ' ', el('span', { class: 'hint role', 'data-label': p.label, text: t('label.' + p.label) }));
      const mins = Math.floor((Date.now() - new Date(p.joined).getTime()) / 60000);
      li.append(el('span', { class: 'hint presence', text: p.away ? t('lobby.away') : t('lobby.waitingFor', { min: mins }) }));
      if (!p.away) {
        const admit = el('button', { type: 'button', 'data-action': 'admit', 'data-participant': p.id, 'data-testid': 'admit', text: t('lobby.admit') });
        putLabel(admit, t('lobby.admitName', { name: nameOf(p) }));
        admit.addEventListener('click', () => act(visit.admit, p.id));
        li.append(admit);
      }
      const dec = el('button', { type: 'button', 'data-action': 'decline', 'data-participant': p.id, 'data-testid': 'decline', class: 'secondary', text: t('lobby.decline') });
      putLabel(dec, t('lobby.declineName', { name: nameOf(p) }));
      dec.addEventListener('click', () => act(visit.decline, p.id));
      li.append(dec);
      waiting.append(li);
    } else if (inCall && p.state === 'admitted' && p.role !== 'host') {
      const rm = el('button', { type: 'button', 'data-action': 'remove', 'data-participant': p.id, class: 'danger', text: t('lobby.remove') });
      putLabel(rm, t('lobby.removeName', { name: nameOf(p) }));
      rm.addEventListener('click', () => act(visit.remove, p.id));
      inCall.append(el('li', { 'data-participant': p.id }, el('span', { class: 'name', text: nameOf(p) }),
        ' ', el('span', { class: 'hint role', 'data-label': p.label, text: t('label.' + p.label) }), rm));
    }
  }
  if (!waiting.children.length) waiting.append(el('li', { class: 'empty', text: t('lobby.nobodyWaiting') }));
}

// guestInviter puts the "Invite a guest" form into container: the host
// picks who the guest is (the label everyone in the call will see) and,
// optionally, their name, and gets a single-use guest link for the visit
// visitId() names. status(text) reports.
function guestInviter(container, visitId, status) {
  const roles = ['interpreter', 'family', 'clinician', 'other'];
  const select = el('select', { id: container.id + '-role', 'data-testid': 'guest-role' });
  for (const r of roles) select.append(el('option', { value: r, text: t('label.' + r) }));
  const name = el('input', { id: container.id + '-name', 'data-testid': 'guest-invite-name', maxlength: '80', autocomplete: 'off' });
  const link = el('input', { id: container.id + '-link', 'data-testid': 'guest-link', readonly: '' });
  const copy = el('button', { type: 'button', class: 'secondary', text: t('guestInvite.copy') });
  const made = el('p', { class: 'hint', 'data-testid': 'guest-link-made' });
  const out = el('div', { hidden: '' }, el('label', { for: link.id, text: t('guestInvite.link') }), el('div', { class: 'row' }, link, copy), made);
  const form = el('form', { 'data-testid': 'guest-invite-form' },
    el('div', { class: 'row' },
      el('div', {}, el('label', { for: select.id, text: t('guestInvite.role') }), select),
      el('div', {}, el('label', { for: name.id, text: t('guestInvite.name') }), name)),
    el('button', { type: 'submit', 'data-testid': 'make-guest-link', text: t('guestInvite.make') }));
  const heading = el('h3', { id: container.id + '-heading', text: t('guestInvite.heading') });
  container.replaceChildren(heading, el('p', { class: 'hint', text: t('guestInvite.help') }), form, out);
  container.setAttribute('role', 'group');
  container.setAttribute('aria-labelledby', heading.id);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    const id = visitId();
    if (!id) return;
    try {
      const g = await visit.createGuestLink(id, select.value, name.value.trim());
      link.value = g.url;
      out.hidden = false;
      const words = t('guestInvite.made', { label: t('label.' + g.label), time: when(g.expires) });
      put(made, words);
      name.value = '';
      status(words);
    } catch (err) {
      status(errorText(err));
    }
  });
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(link.value); status(t('guestInvite.copied')); } catch (_) { link.select(); status(t('lobby.copyByHand')); }
  });
}

// ------------------------------------------------------------ alerts ---

// alerter tells the clinician when someone arrives in a waiting room: a
// short chime (Web Audio, no file), a desktop notification when allowed
// (it names nobody: a locked screen may show it), the tab's title and
// favicon with the number waiting, and a line in an aria-live region (the
// sound's caption). It returns update(visits), to call with every list
// the page fetches; people already waiting when the page opens count in
// the title but do not chime.
function alerter(captionSel) {
  // The page's own title, in the language the page speaks now.
  const titleKey = document.querySelector('title')?.dataset.t;
  const baseTitle = () => titleKey ? t(titleKey) : '';
  const seen = new Set();
  let first = true;
  let audio = null;
  const icon = document.querySelector('link[rel=icon]') || document.head.appendChild(el('link', { rel: 'icon' }));
  const baseIcon = icon.getAttribute('href') || '';
  // Browsers let a page play sound only after a user gesture.
  document.addEventListener('pointerdown', () => { audio = audio || new AudioContext(); audio.resume(); }, { once: true });
  function chime() {
    try {
      audio = audio || new AudioContext();
      const now = audio.currentTime;
      for (const [i, f] of [[0, 660], [1, 880]]) {
        const o = audio.createOscillator();
        const g = audio.createGain();
        o.frequency.value = f;
        g.gain.setValueAtTime(0.15, now + i * 0.18);
        g.gain.exponentialRampToValueAtTime(0.001, now + i * 0.18 + 0.3);
        o.connect(g).connect(audio.destination);
        o.start(now + i * 0.18);
        o.stop(now + i * 0.18 + 0.32);
      }
    } catch (_) { /* no audio: the caption and the title still tell */ }
  }
  function badge(n) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#0b6bcb"/>` +
      `<circle cx="23" cy="9" r="9" fill="#b3261e"/><text x="23" y="13" font-size="12" text-anchor="middle" fill="#fff" font-family="sans-serif">${Math.min(n, 9)}</text></svg>`;
    return 'data:image/svg+xml,' + encodeURIComponent(svg);
  }
  return function update(visits) {
    const waiting = [];
    for (const v of visits) for (const p of v.participants || []) if (p.state === 'waiting' && !p.away) waiting.push(p);
    const arrived = waiting.filter(p => !seen.has(p.id));
    for (const p of waiting) seen.add(p.id);
    put(document.querySelector('title'), waiting.length ? t('alert.title', { n: waiting.length, title: baseTitle() }) : baseTitle());
    if (waiting.length) icon.setAttribute('href', badge(waiting.length));
    else if (baseIcon) icon.setAttribute('href', baseIcon);
    else icon.removeAttribute('href');
    if (first) { first = false; return; }
    if (!arrived.length) return;
    chime();
    say(captionSel, t('alert.caption', { name: arrived.map(p => nameOf(p)).join(', ') }));
    if (window.Notification && Notification.permission === 'granted') {
      try { new Notification(t('alert.notificationTitle'), { body: t('alert.notificationBody'), tag: 'telegate-waiting' }); } catch (_) { /* not here */ }
    }
  };
}

// alertsButton offers desktop notifications while the browser has not
// been asked yet (asking needs a click).
function alertsButton(sel) {
  const b = $(sel);
  if (!b || !window.Notification || Notification.permission !== 'default') return;
  b.hidden = false;
  b.addEventListener('click', async () => {
    await Notification.requestPermission();
    b.hidden = true;
  });
}

// ---------------------------------------------------------------- lobby ---

async function lobby() {
  let current = null;
  const alertArrivals = alerter('#alert-caption');
  const chatUpdate = lobbyChat();
  alertsButton('#enable-alerts');
  const form = $('#create-form');
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    say('#lobby-status', t('lobby.creating'));
    try {
      const v = await visit.createVisit({
        title: $('#visit-title').value,
        scheduled: $('#visit-scheduled').value || undefined,
        participants: Number($('#visit-participants').value) || undefined,
      });
      current = v.id;
      showInvite(v.invite);
      say('#lobby-status', t('lobby.created'));
      await refresh();
    } catch (err) {
      failed(err);
    }
  });
  $('#copy-invite').addEventListener('click', async () => {
    const input = $('#invite-link');
    try {
      await navigator.clipboard.writeText(input.value);
      say('#lobby-status', t('lobby.copied'));
    } catch (_) {
      input.select();
      say('#lobby-status', t('lobby.copyByHand'));
    }
  });
  guestInviter($('#lobby-guest-invite'), () => current, msg => say('#lobby-status', msg));
  $('#new-invite').addEventListener('click', async () => {
    if (!current) return;
    try { showInvite(await visit.reissueInvite(current)); say('#lobby-status', t('lobby.newInvite')); } catch (err) { failed(err); }
  });
  $('#end-visit').addEventListener('click', async () => {
    if (!current) return;
    try { await visit.endVisit(current); current = null; await refresh(); say('#lobby-status', t('lobby.ended')); } catch (err) { failed(err); }
  });

  function showInvite(inv) {
    $('#invite').hidden = false;
    $('#invite-link').value = inv.url;
    say('#invite-expires', t('lobby.validUntil', { time: when(inv.expires) }));
  }

  async function act(fn, pid) {
    try { await fn(current, pid); await refresh(); } catch (err) { failed(err); }
  }

  let poll = null;
  // Signed out (idle timeout, sign-out elsewhere): take the patients'
  // names off the screen, stop polling and offer to sign in again.
  function signedOut() {
    clearInterval(poll);
    const again = el('a', { class: 'button', href: '/.telegate/login?rd=' + encodeURIComponent('/.telegate/visits/lobby'), text: t('lobby.signInAgain') });
    const card = el('section', { class: 'card', id: 'signed-out', 'data-testid': 'signed-out', role: 'alert' },
      el('h2', { text: t('lobby.signedOutTitle') }),
      el('p', { text: t('lobby.signedOutText') }),
      again);
    $('main').replaceChildren(card);
  }

  function failed(err) {
    if (err.status === 401) signedOut();
    else say('#lobby-status', errorText(err));
  }

  async function refresh(opts = {}) {
    let visits;
    try {
      visits = await visit.listVisits(opts);
    } catch (err) {
      failed(err);
      return;
    }
    alertArrivals(visits);
    const list = $('#visit-list');
    list.replaceChildren();
    for (const v of visits) {
      const b = el('button', { type: 'button', 'data-visit': v.id, 'aria-pressed': String(v.id === current), text: t('lobby.waitingCount', { title: visitTitle(v), n: v.waiting }) });
      b.addEventListener('click', () => { current = v.id; $('#invite').hidden = true; refresh(); });
      list.append(el('li', {}, b));
    }
    if (!current && visits.length) current = visits[visits.length - 1].id;
    const v = visits.find(x => x.id === current);
    $('#current-visit').hidden = !v;
    chatUpdate(v);
    if (!v) return;
    say('#current-title', visitTitle(v));
    say('#current-times', concat(v.scheduled ? t('lobby.scheduled', { time: when(v.scheduled) }) : '', v.ends_at ? t('lobby.endsBy', { time: when(v.ends_at) }) : t('lobby.notStarted')));
    $('#start-call').href = `/.telegate/visits/${v.id}/call`;
    renderPeople(v, $('#waiting-list'), $('#participant-list'), act);
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
    if (!id) throw Object.assign(new Error('no visit'), { reason: 'invite-malformed' });
    await waitInRoom(id);
  } catch (err) {
    $('#waiting').classList.add('refused');
    // Nothing to wait for: drop the spinner and the "keep this page open" hint.
    for (const n of document.querySelectorAll('#waiting .spinner, #waiting .hint')) n.hidden = true;
    say('#waiting-status', errorText(err));
  }
}

// waitInRoom waits in visit id's waiting room until this person is
// admitted, then opens the call. While the visit says they wait (checked
// by the server) it offers the pre-call check and the chat with the
// clinic (waiting-room.html): the patient's page and the guest's alike.
// A refusal or an ended visit takes both away and is thrown.
async function waitInRoom(id) {
  let chat = null;
  let check = null;
  const leave = () => {
    if (check) check.stop();
    if (chat) chat.close();
  };
  let v;
  try {
    v = await visit.waitForAdmission(id, {
      onUpdate: u => {
        if (u.status === 'ended' || !u.self || u.self.state !== 'waiting') return;
        say('#waiting-status', t('wait.inRoom'));
        if (!check) check = preCallCheck(id);
        if (!chat) chat = waitingChat(id);
      },
    });
  } catch (err) {
    leave();
    for (const n of document.querySelectorAll('#precall, #wchat')) n.hidden = true;
    throw err;
  }
  leave();
  say('#waiting-status', t('wait.admitted'));
  location.assign(v.call_url);
}

// preCallCheck runs the waiting room's check, on request: camera preview
// with device choice, a microphone level meter, a speaker test sound with
// a caption, and the network check through the relay (visit.networkCheck)
// with a verdict in plain words. Chosen devices are remembered on this
// browser (visit.saveDevice) and used when the call starts. It returns
// {stop}, which lets go of the camera and microphone.
function preCallCheck(id) {
  const box = $('#precall');
  box.hidden = false;
  say('#precall-intro', t('check.intro'));
  const video = $('#precall-video');
  const sinkable = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
  let stream = null;
  let audio = null;
  let meterTimer = null;
  let stopped = false;
  let running = false;

  function stopStream() {
    clearInterval(meterTimer);
    if (stream) for (const tr of stream.getTracks()) tr.stop();
    stream = null;
  }
  async function preview() {
    stopStream();
    const note = $('#precall-media-note');
    note.hidden = true;
    let m;
    try {
      m = await startMedia();
    } catch (_) {
      m = { stream: null, audio: 'absent', video: 'absent' };
    }
    if (stopped) { if (m.stream) for (const tr of m.stream.getTracks()) tr.stop(); return; }
    stream = m.stream;
    video.srcObject = stream;
    const text = m.inUse ? t('media.inUse') : mediaText(m.audio, m.video);
    if (text) { say('#precall-media-note', text); note.hidden = false; }
    await listDevices();
    meter();
  }
  async function listDevices() {
    let devices = [];
    try { devices = await navigator.mediaDevices.enumerateDevices(); } catch (_) { /* none */ }
    const saved = visit.savedDevices();
    const inUse = {
      videoinput: stream && stream.getVideoTracks()[0] ? stream.getVideoTracks()[0].getSettings().deviceId : '',
      audioinput: stream && stream.getAudioTracks()[0] ? stream.getAudioTracks()[0].getSettings().deviceId : '',
      audiooutput: saved.audiooutput || '',
    };
    for (const [kind, sel] of [['videoinput', '#precall-camera'], ['audioinput', '#precall-mic'], ['audiooutput', '#precall-speaker']]) {
      const select = $(sel);
      const list = devices.filter(d => d.kind === kind && d.deviceId);
      select.replaceChildren(...list.map((d, i) => el('option', { value: d.deviceId, text: d.label || t('check.device.' + kind, { n: i + 1 }) })));
      if (inUse[kind] && list.some(d => d.deviceId === inUse[kind])) select.value = inUse[kind];
      select.disabled = list.length === 0;
    }
    $('#precall-speaker-row').hidden = !sinkable || !devices.some(d => d.kind === 'audiooutput' && d.deviceId);
  }
  function meter() {
    const tr = stream && stream.getAudioTracks()[0];
    if (!tr) return;
    try {
      audio = audio || new AudioContext();
      const src = audio.createMediaStreamSource(new MediaStream([tr]));
      const an = audio.createAnalyser();
      an.fftSize = 512;
      src.connect(an);
      const buf = new Float32Array(an.fftSize);
      const level = $('#precall-level');
      meterTimer = setInterval(() => {
        an.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const x of buf) sum += x * x;
        const rms = Math.sqrt(sum / buf.length);
        level.value = Math.min(1, rms * 4);
        level.dataset.level = String(level.value);
      }, 100);
    } catch (_) { /* no Web Audio: no meter */ }
  }
  async function sound() {
    say('#precall-sound-caption', t('check.soundCaption'));
    try {
      audio = audio || new AudioContext();
      await audio.resume();
      const dest = audio.createMediaStreamDestination();
      const out = new Audio();
      out.srcObject = dest.stream;
      const sink = visit.savedDevices().audiooutput;
      if (sink && out.setSinkId) { try { await out.setSinkId(sink); } catch (_) { /* the default one */ } }
      await out.play().catch(() => {});
      const now = audio.currentTime;
      for (const [i, f] of [[0, 523], [1, 659], [2, 784]]) {
        const o = audio.createOscillator();
        const g = audio.createGain();
        o.frequency.value = f;
        g.gain.setValueAtTime(0.2, now + i * 0.35);
        g.gain.exponentialRampToValueAtTime(0.001, now + i * 0.35 + 0.3);
        o.connect(g).connect(dest);
        o.start(now + i * 0.35);
        o.stop(now + i * 0.35 + 0.32);
      }
      setTimeout(() => { out.pause(); out.srcObject = null; $('#precall-sound-caption').dataset.played = 'true'; }, 1300);
    } catch (_) { /* the caption still tells */ }
  }
  async function network() {
    if (running) return;
    running = true;
    const verdict = $('#precall-verdict');
    delete verdict.dataset.verdict;
    say('#precall-verdict', t('check.running'));
    say('#precall-figures', '');
    $('#precall-network').disabled = true;
    try {
      const track = stream && stream.getVideoTracks()[0];
      const r = await visit.networkCheck(id, { track: track && track.readyState === 'live' ? track : null });
      if (stopped) return;
      verdict.dataset.verdict = r.verdict;
      verdict.dataset.localCandidateType = r.localCandidateType;
      verdict.dataset.remoteCandidateType = r.remoteCandidateType;
      verdict.dataset.rttMs = r.rtt === null ? '' : String(Math.round(r.rtt * 1000));
      verdict.dataset.loss = String(r.loss);
      verdict.dataset.bps = String(r.bps);
      say('#precall-verdict', t('check.' + r.verdict));
      if (r.rtt !== null) say('#precall-figures', t('check.figures', { ms: Math.round(r.rtt * 1000), loss: Math.round(r.loss * 100), kbps: Math.round(r.bps / 1000) }));
    } catch (err) {
      verdict.dataset.verdict = 'error';
      say('#precall-verdict', err && err.status === 429 ? t('check.busy') : err && err.reason ? errorText(err) : t('check.failed'));
    } finally {
      running = false;
      $('#precall-network').disabled = false;
    }
  }
  $('#precall-start').addEventListener('click', async () => {
    $('#precall-start').hidden = true;
    $('#precall-body').hidden = false;
    await preview();
    network();
  });
  for (const [kind, sel] of [['videoinput', '#precall-camera'], ['audioinput', '#precall-mic']]) {
    $(sel).addEventListener('change', ev => { visit.saveDevice(kind, ev.currentTarget.value); preview(); });
  }
  $('#precall-speaker').addEventListener('change', ev => visit.saveDevice('audiooutput', ev.currentTarget.value));
  $('#precall-sound').addEventListener('click', sound);
  $('#precall-network').addEventListener('click', network);
  return {
    stop() {
      stopped = true;
      stopStream();
      video.srcObject = null;
      if (audio) audio.close().catch(() => {});
    },
  };
}

// chatLine is one line of a chat log: who wrote it (a name, or Words
// such as "You"), then its parts: what a person typed (a string, kept as
// typed), Words (said again on a switch) or elements (a file's link).
function chatLine(who, ...parts) {
  return el('li', {}, el('strong', { text: concat(who, ': ') }),
    ...parts.map(p => typeof p === 'string' || p instanceof Node ? p : el('span', { text: p })));
}

// waitingChat opens the waiting-room chat of visit id on a waiting
// page: messages to and from the clinic (visit.WaitingRoomChat).
function waitingChat(id) {
  $('#wchat').hidden = false;
  const chat = new visit.WaitingRoomChat(id);
  const log = $('#wchat-log');
  const line = (who, text) => log.append(chatLine(who, text));
  chat.addEventListener('message', e => line(e.detail.name || t('wchat.clinic'), e.detail.text));
  chat.addEventListener('closed', () => { $('#wchat-send').disabled = true; });
  $('#wchat-form').addEventListener('submit', ev => {
    ev.preventDefault();
    const input = $('#wchat-input');
    const text = input.value.trim();
    if (!text) return;
    if (text.length > visit.WAITING_CHAT_MAX_CHARS) { say('#wchat-status', t('chat.tooLong', { n: visit.WAITING_CHAT_MAX_CHARS })); return; }
    if (!chat.send(text)) { say('#wchat-status', t('wchat.notSent')); return; }
    line(t('wchat.you'), text);
    input.value = '';
    say('#wchat-status', '');
  });
  chat.open();
  return chat;
}

// lobbyChat is the clinician's side of the waiting-room chat, on the
// lobby and the host's call page: one socket for the visit shown, a To
// list of the people waiting. It returns update(visit) for every refresh of the visit.
function lobbyChat() {
  let chat = null;
  let vid = null;
  const log = $('#wchat-log');
  const names = new Map();
  const line = (who, text) => log.append(chatLine(who, text));
  $('#wchat-form').addEventListener('submit', ev => {
    ev.preventDefault();
    const input = $('#wchat-input');
    const to = $('#wchat-to').value;
    const text = input.value.trim();
    if (!text) return;
    if (!to) { say('#wchat-status', t('wchat.nobody')); return; }
    if (text.length > visit.WAITING_CHAT_MAX_CHARS) { say('#wchat-status', t('chat.tooLong', { n: visit.WAITING_CHAT_MAX_CHARS })); return; }
    if (!chat || !chat.send(text, to)) { say('#wchat-status', t('wchat.notSent')); return; }
    line(t('wchat.you'), t('wchat.to', { name: names.get(to) || '', text }));
    input.value = '';
    say('#wchat-status', '');
  });
  return function update(v) {
    if (!v || v.status === 'ended') {
      if (chat) chat.close();
      chat = null;
      vid = null;
      $('#wchat').hidden = true;
      return;
    }
    if (vid !== v.id) {
      if (chat) chat.close();
      vid = v.id;
      log.replaceChildren();
      chat = new visit.WaitingRoomChat(v.id);
      chat.addEventListener('message', e => {
        const d = e.detail;
        // From someone waiting, or from another clinic page to them.
        line(d.name || names.get(d.from) || t('label.other'), d.from === d.to ? d.text : t('wchat.to', { name: names.get(d.to) || '', text: d.text }));
      });
      chat.open();
    }
    const waiting = (v.participants || []).filter(p => p.state === 'waiting' && !p.away);
    // Shown while someone waits, and while there is a conversation to read.
    $('#wchat').hidden = waiting.length === 0 && log.children.length === 0;
    const select = $('#wchat-to');
    const before = select.value;
    for (const p of waiting) names.set(p.id, nameOf(p));
    select.replaceChildren(...waiting.map(p => el('option', { value: p.id, text: nameOf(p) })));
    if (waiting.some(p => p.id === before)) select.value = before;
    select.disabled = waiting.length === 0;
  };
}

// ---------------------------------------------------------- guest page ---

// guest is the page a guest link opens: it says what the guest is invited
// as, offers to sign in or (where allowed) to join without an account,
// then waits in the waiting room as the patient's page does (waitInRoom:
// the pre-call check and the chat with the clinic). The link is
// used once the guest joins; from then on the address names the visit.
async function guest() {
  const params = new URLSearchParams(location.search);
  const link = params.get('link');
  let id = params.get('visit');
  const refused = err => {
    $('#waiting').classList.add('refused');
    $('#guest-choice').hidden = true;
    for (const n of document.querySelectorAll('#waiting .spinner, #guest-keep')) n.hidden = true;
    say('#waiting-status', errorText(err));
    $('#waiting-status').focus?.();
  };
  const wait = async () => {
    $('#guest-choice').hidden = true;
    for (const n of document.querySelectorAll('#waiting .spinner, #guest-keep')) n.hidden = false;
    say('#waiting-status', t('wait.inRoom'));
    await waitInRoom(id);
  };
  const enter = async name => {
    const v = await visit.joinAsGuest(link, name);
    id = v.id;
    // The link is used: keep it out of the address bar and history.
    history.replaceState(null, '', `/.telegate/visits/guest?visit=${encodeURIComponent(id)}`);
    await wait();
  };
  try {
    if (!link) {
      if (!id) throw Object.assign(new Error('no link'), { reason: 'guest-link-malformed' });
      await wait();
      return;
    }
    say('#waiting-status', t('guest.checking'));
    const g = await visit.checkGuestLink(link);
    const label = t('label.' + g.label);
    say('#guest-invited', g.name ? t('guest.invitedAsName', { name: g.name, label }) : t('guest.invitedAs', { label }));
    if (g.signed_in) { await enter(''); return; }
    $('#guest-sign-in').href = g.sign_in_url;
    $('#guest-choice').hidden = false;
    say('#waiting-status', t(g.without_account ? 'guest.signInOr' : 'guest.signInOnly'));
    if (g.without_account) {
      const form = $('#guest-form');
      form.hidden = false;
      if (g.name) $('#guest-name').value = g.name;
      form.addEventListener('submit', async ev => {
        ev.preventDefault();
        $('#guest-join').disabled = true;
        try { await enter($('#guest-name').value.trim()); } catch (err) { refused(err); }
      });
    }
  } catch (err) {
    refused(err);
  }
}

// ----------------------------------------------------------------- call ---

// startMedia asks for the camera and microphone, and when that fails for
// each alone, and says what each is: "on", "blocked" (permission denied)
// or "absent" (no such device, or it would not start).
async function startMedia() {
  // The devices chosen in the pre-call check on this browser.
  const { audio: audioC, video } = visit.mediaConstraints();
  const gum = c => visit.getUserMediaChosen(c);
  const state = err => err.name === 'NotAllowedError' || err.name === 'SecurityError' ? 'blocked' : 'absent';
  try {
    return { stream: await gum({ audio: audioC, video }), audio: 'on', video: 'on' };
  } catch (err) {
    if (err.name === 'NotReadableError') return { stream: null, audio: 'absent', video: 'absent', inUse: true };
  }
  const out = { stream: null, audio: 'on', video: 'on' };
  for (const [kind, c] of [['audio', { audio: audioC }], ['video', { video }]]) {
    try {
      const s = await gum(c);
      if (!out.stream) out.stream = s;
      else for (const tr of s.getTracks()) out.stream.addTrack(tr);
    } catch (err) {
      out[kind] = state(err);
    }
  }
  return out;
}

async function call() {
  const id = location.pathname.split('/')[3];
  const remote = $('#remote-video');
  const local = $('#local-video');
  const rejoin = $('#rejoin');
  rejoin.addEventListener('click', () => location.reload());
  const offerRejoin = () => { rejoin.hidden = false; };

  // Admission first: nothing is asked of the camera before the visit says
  // this person is let in.
  say('#call-status', t('call.checking'));
  let v;
  try {
    v = await visit.getVisit(id);
  } catch (err) {
    say('#call-status', errorText(err));
    return;
  }
  if (v.status === 'ended') {
    say('#call-status', t('error.ended'));
    return;
  }
  if (!v.self || v.self.state !== 'admitted') {
    say('#call-status', v.self && v.self.state !== 'waiting' ? errorText({ reason: v.self.state }) : t('call.notAdmitted'));
    if (v.self && v.self.state === 'waiting') {
      const back = $('#back-to-waiting');
      // A guest waits on the guest page (which needs no account), the
      // patient on the join page.
      back.href = `/.telegate/visits/${v.self.label === 'patient' ? 'join' : 'guest'}?visit=${encodeURIComponent(id)}`;
      back.hidden = false;
    }
    return;
  }
  if (v.manage) hostPanel(id);
  const self = v.self;

  say('#call-status', t('call.starting'));
  const m = await startMedia();
  if (m.stream) local.srcObject = m.stream;
  // Kept apart from the call status, so "Connected." never hides it.
  const note = m.inUse ? t('media.inUse') : mediaText(m.audio, m.video);
  if (note) {
    say('#media-note', note);
    $('#media-note').hidden = false;
    offerRejoin();
  }
  // Nothing to turn off that is not there.
  $('#camera').disabled = m.video !== 'on';
  $('#mute').disabled = m.audio !== 'on';
  const c = new visit.Call(id, { localStream: m.stream, media: { audio: m.audio, video: m.video } });
  let firstPeer = null;       // who is on the stage (showStage decides)
  const streams = new Map();  // peer id → that peer's camera stream
  const videos = new Map();   // peer id → the small picture of a peer not on the stage
  const peerMedia = new Map(); // peer id → {audio, video}

  const peerName = pid => nameOf(c.peers.get(pid));
  // nameTag names, on a picture's tag, participant pid as the server's
  // roster has them (c.peers): their display name and what they are in
  // the visit; no one (null) hides the tag.
  const nameTag = (tag, pid) => {
    const p = pid ? c.peers.get(pid) : null;
    tag.hidden = !pid;
    put(tag.querySelector('.name'), pid ? peerName(pid) : '');
    put(tag.querySelector('.role'), p && p.label ? t('label.' + p.label) : '');
  };
  const setState = st => {
    say('#connection-state', t('state.' + st));
    $('#connection-state').dataset.state = st;
  };
  const clearFigures = () => {
    say('#quality', t('quality.none'));
    delete $('#stats').dataset.quality;
    say('#security-code', '––– –––');
    delete $('#security-code').dataset.code;
  };

  rosterList(c, id, self, v.manage);
  // The stage: one other participant in the main picture. Its name, and
  // the connection state, quality and security code shown beside it, are
  // always that participant's. showStage alone decides who it is and what
  // every picture shows, from who is in the call now (c.peers: what the
  // signaling server says, a peer gone as soon as it says so, however
  // they went) and the streams received; every event that changes either
  // calls it. The one on the stage stays there while they are in the
  // call; when they are not, someone still there takes it, a picture
  // already arriving first.
  const live = s => s.getVideoTracks().some(tr => tr.readyState === 'live') || s.getAudioTracks().some(tr => tr.readyState === 'live');
  const sink = vid => {
    // The speaker chosen in the pre-call check, where the browser can.
    const out = visit.savedDevices().audiooutput;
    if (out && vid.setSinkId && vid.sinkId !== out) vid.setSinkId(out).catch(() => {});
  };
  const showStage = () => {
    const here = c.closed ? [] : [...c.peers.keys()];
    // A stream of someone gone, or of a connection closed since (a page
    // reloaded: its new connection brings a new one), is never shown.
    for (const [pid, s] of streams) if (!here.includes(pid) || !live(s)) streams.delete(pid);
    const was = firstPeer;
    if (!here.includes(firstPeer)) firstPeer = here.find(pid => streams.has(pid)) || here[0] || null;
    const s = firstPeer ? streams.get(firstPeer) || null : null;
    if (remote.srcObject !== s) remote.srcObject = s;
    if (s) sink(remote);
    for (const [pid, tile] of videos) {
      if (pid !== firstPeer && streams.has(pid)) continue;
      tile.remove();
      videos.delete(pid);
    }
    for (const [pid, ps] of streams) {
      if (pid === firstPeer) continue;
      let tile = videos.get(pid);
      if (!tile) {
        tile = el('div', { class: 'tile', 'data-participant': pid },
          el('video', { autoplay: '', playsinline: '', class: 'remote' }),
          el('p', { class: 'name-tag', 'data-testid': 'name-tag' }, el('span', { class: 'name' }), ' ', el('span', { class: 'role' })));
        $('#remote-videos').append(tile);
        videos.set(pid, tile);
      }
      const vid = tile.querySelector('video');
      if (vid.srcObject !== ps) vid.srcObject = ps;
      sink(vid);
      nameTag(tile.querySelector('.name-tag'), pid);
      putLabel(vid, peerName(pid));
    }
    nameTag($('#remote-tag'), firstPeer);
    putLabel(remote, firstPeer ? peerName(firstPeer) : t('html.call.remote-video'));
    if (firstPeer === was) return firstPeer;
    // Someone else is on the stage: the figures beside it are theirs.
    clearFigures();
    if (!firstPeer) return null;
    const code = c.codes.get(firstPeer);
    if (code) {
      const sc = $('#security-code');
      sc.textContent = code.slice(0, 3) + ' ' + code.slice(3);
      sc.dataset.code = code;
    }
    const pc = c.pcs.get(firstPeer);
    setState(pc ? pc.connectionState : 'new');
    return firstPeer;
  };
  c.addEventListener('welcome', e => {
    say('#call-status', e.detail.peers.length ? t('call.connecting') : t('call.waitingForOther'));
    showStage();
  });
  c.addEventListener('peer', () => {
    showStage();
    say('#call-status', t('call.connecting'));
  });
  c.addEventListener('remotestream', e => {
    const { peerId, stream: s } = e.detail;
    streams.set(peerId, s);
    // A track that ends (its connection closed) takes the picture away.
    for (const tr of s.getTracks()) tr.addEventListener('ended', showStage, { once: true });
    showStage();
  });
  // No path at all: still not connected 15 s after the connection
  // failed (restarts included) — say what to do.
  let noPath = null;
  c.addEventListener('state', e => {
    if (e.detail.peerId !== firstPeer && firstPeer) {
      // Someone who joined later is connected: the status line, which
      // said "Connecting…" when they arrived, says the call is connected
      // once everyone in it is.
      if (e.detail.state === 'connected' && [...c.pcs.values()].every(pc => pc.connectionState === 'connected')) say('#call-status', t('call.connected'));
      return;
    }
    const st = e.detail.state;
    setState(st);
    if (st === 'connected') { clearTimeout(noPath); noPath = null; }
    if ((st === 'failed' || st === 'disconnected') && !noPath) {
      noPath = setTimeout(() => {
        if ($('#connection-state').dataset.state !== 'connected' && !c.closed) { say('#call-status', t('call.noPath')); offerRejoin(); }
      }, 15000);
    }
    const text = { connected: t('call.connected'), connecting: t('call.connecting'), failed: t('call.restarting'), disconnected: t('call.restarting') }[st];
    if (text) say('#call-status', text);
  });
  // A planned move to another relay keeps the call going: nothing to say.
  c.addEventListener('restarting', e => { if (e.detail.why !== 'moved') say('#call-status', t('call.restarting')); });
  c.addEventListener('lost', e => { $('#stats').dataset.lostAt = String(e.detail.at); });
  c.addEventListener('recovered', e => {
    say('#call-status', t('call.recovered'));
    $('#stats').dataset.recoveredMs = String(e.detail.ms);
    $('#stats').dataset.recoveredAt = String(e.detail.at);
  });
  c.addEventListener('code', e => {
    if (firstPeer && e.detail.peerId !== firstPeer) return;
    const code = e.detail.code;
    const sc = $('#security-code');
    sc.textContent = code.slice(0, 3) + ' ' + code.slice(3);
    sc.dataset.code = code;
    if (e.detail.changed) say('#call-status', t('call.codeChanged'));
  });
  c.addEventListener('media', e => {
    peerMedia.set(e.detail.peerId, e.detail);
  });
  c.addEventListener('stats', e => {
    if (firstPeer && e.detail.peerId !== firstPeer) return;
    const s = e.detail.stats;
    const box = $('#stats');
    const prev = Number(box.dataset.inboundVideoBytes || 0);
    box.dataset.inboundVideoBytes = String(s.inboundVideoBytes);
    box.dataset.localCandidateType = s.localCandidateType;
    box.dataset.remoteCandidateType = s.remoteCandidateType;
    const kbps = Math.max(0, Math.round((s.inboundVideoBytes - prev) * 8 / 1000));
    box.dataset.kbps = String(kbps);
    const pm = peerMedia.get(e.detail.peerId);
    if (pm && pm.video !== 'on') {
      // No picture is expected: say why, not "poor".
      box.dataset.quality = 'no-video';
      say('#quality', t('quality.noVideo', { name: peerName(e.detail.peerId), why: t('why.' + pm.video) }));
      return;
    }
    let quality = 'good';
    if (s.rtt > 0.3 || s.packetsLost > 50) quality = 'fair';
    if (s.rtt > 0.8 || kbps < 50) quality = 'poor';
    box.dataset.quality = quality;
    say('#quality', t('quality.' + quality));
  });
  c.addEventListener('peerleft', e => {
    peerMedia.delete(e.detail.peerId);
    const was = firstPeer;
    const now = showStage();
    if (e.detail.peerId !== was) return;
    if (!now) {
      setState('waiting');
      say('#call-status', t('call.otherLeft'));
      return;
    }
    // Someone else still in the call has the stage now.
    say('#call-status', t('call.left', { name: nameOf(e.detail.peer) }));
  });
  // 1001: the node is restarting (its reason says so); otherwise the
  // network.
  c.addEventListener('reconnecting', e => say('#call-status', t(e.detail.code === 1001 ? 'call.nodeRestarting' : 'call.reconnecting')));
  c.addEventListener('resumed', () => {
    const st = $('#connection-state').dataset.state;
    if (st === 'connected') say('#call-status', t('call.connected'));
  });
  c.addEventListener('closed', e => {
    const key = {
      ended: 'call.ended', removed: 'call.removed', 'signed-out': 'call.signedOut',
      replaced: 'call.replaced', refused: 'call.refused', hangup: 'call.hungUp',
    }[e.detail.why] || 'call.closed';
    say('#call-status', t(key));
    showStage(); // nobody is on the stage any more
    setState('closed');
    clearFigures();
    local.srcObject = null;
    for (const b of document.querySelectorAll('#controls button')) b.disabled = true;
    if (e.detail.why !== 'ended' && e.detail.why !== 'removed') {
      rejoin.disabled = false;
      offerRejoin();
    }
  });

  $('#mute').addEventListener('click', ev => {
    const on = ev.currentTarget.getAttribute('aria-pressed') !== 'true';
    ev.currentTarget.setAttribute('aria-pressed', String(on));
    put(ev.currentTarget, on ? t('call.unmute') : t('call.mute'));
    c.setMuted(on);
  });
  $('#camera').addEventListener('click', ev => {
    const off = ev.currentTarget.getAttribute('aria-pressed') !== 'true';
    ev.currentTarget.setAttribute('aria-pressed', String(off));
    put(ev.currentTarget, off ? t('call.cameraOn') : t('call.cameraOff'));
    c.setCamera(!off);
  });
  $('#hangup').addEventListener('click', () => c.hangUp());
  chatAndScreen(c, peerName);

  try {
    await c.start();
  } catch (err) {
    say('#call-status', err.reason ? errorText(err) : t('call.startFailed'));
    offerRejoin();
  }
}

// rosterList keeps the call page's "In the call" list: this person and
// every other participant connected, each named with what they are in the
// visit (the label the server gives, never one a page sends) and the
// security code of this page's connection with them. The host also gets
// Remove for everyone else.
function rosterList(c, visitId, self, manage) {
  const list = $('#roster-list');
  const rows = new Map(); // peer id → li
  const selfRow = el('li', { 'data-participant': self.id, 'data-self': 'true' },
    el('span', { class: 'name', text: t('roster.youAre', { name: nameOf(self) }) }), ' ',
    el('span', { class: 'hint role', 'data-label': self.label, text: t('label.' + self.label) }));
  list.replaceChildren(selfRow);
  const add = p => {
    let li = rows.get(p.id);
    if (!li) {
      li = el('li', { 'data-participant': p.id, 'data-testid': 'roster-peer' });
      rows.set(p.id, li);
      list.append(li);
    }
    const code = el('strong', { class: 'peer-code', 'data-testid': 'peer-code' });
    const prev = li.querySelector('.peer-code');
    if (prev && prev.dataset.code) { code.dataset.code = prev.dataset.code; code.textContent = prev.textContent; } else put(code, t('roster.noCode'));
    li.dataset.label = p.label;
    li.replaceChildren(el('span', { class: 'name', text: nameOf(p) }), ' ',
      el('span', { class: 'hint role', 'data-label': p.label, text: t('label.' + p.label) }), ' ',
      el('span', { class: 'hint', text: concat(t('roster.codeWith', { name: nameOf(p) }), ': ') }), code);
    if (manage && p.role !== 'host') {
      const rm = el('button', { type: 'button', class: 'danger', 'data-action': 'remove', 'data-participant': p.id, 'aria-label': t('roster.remove', { name: nameOf(p) }), text: t('lobby.remove') });
      rm.addEventListener('click', async () => {
        rm.disabled = true;
        try { await visit.remove(visitId, p.id); say('#host-status', t('roster.removed', { name: nameOf(p) })); } catch (err) { rm.disabled = false; say('#host-status', errorText(err)); }
      });
      li.append(' ', rm);
    }
  };
  c.addEventListener('welcome', e => { for (const p of e.detail.peers) add(p); });
  c.addEventListener('peer', e => add(e.detail.peer));
  c.addEventListener('peerleft', e => { const li = rows.get(e.detail.peerId); if (li) { li.remove(); rows.delete(e.detail.peerId); } });
  c.addEventListener('code', e => {
    const li = rows.get(e.detail.peerId);
    const code = li && li.querySelector('.peer-code');
    if (!code) return;
    code.dataset.code = e.detail.code;
    code.textContent = e.detail.code.slice(0, 3) + ' ' + e.detail.code.slice(3);
  });
  // Each connection's own inbound video, on its row (what a test or a
  // support person reads to see every pair's media flowing).
  c.addEventListener('stats', e => {
    const li = rows.get(e.detail.peerId);
    if (!li) return;
    li.dataset.inboundVideoBytes = String(e.detail.stats.inboundVideoBytes);
    li.dataset.inboundVideoFrames = String(e.detail.stats.inboundVideoFrames);
    li.dataset.candidates = e.detail.stats.localCandidateType + '/' + e.detail.stats.remoteCandidateType;
  });
  c.addEventListener('closed', () => { for (const li of rows.values()) li.remove(); rows.clear(); });
}

// chatAndScreen wires the call page's chat, file sending and screen
// share to the call c (visit.js sends them over the data channel).
function chatAndScreen(c, peerName) {
  const log = $('#chat-log');
  const status = sel => text => say(sel, text);
  const chatStatus = status('#chat-status');
  const line = (who, ...parts) => log.append(chatLine(who, ...parts));
  const fileLink = (name, blob) => el('a', { href: URL.createObjectURL(blob), download: name, 'data-size': String(blob.size),
    text: t('chat.fileSize', { name, size: Math.max(1, Math.round(blob.size / 1024)) }) });

  $('#chat-form').addEventListener('submit', ev => {
    ev.preventDefault();
    const input = $('#chat-input');
    const text = input.value.trim();
    if (!text) return;
    if (text.length > visit.CHAT_MAX_CHARS) { chatStatus(t('chat.tooLong', { n: visit.CHAT_MAX_CHARS })); return; }
    if (!c.sendChat(text)) { chatStatus(t('chat.notSent')); return; }
    line(t('chat.you'), text);
    input.value = '';
    chatStatus('');
  });
  $('#chat-file').addEventListener('change', async ev => {
    const input = ev.currentTarget;
    const f = input.files && input.files[0];
    if (!f) return;
    input.value = '';
    if (f.size > visit.FILE_MAX_BYTES) { chatStatus(t('chat.fileTooBig')); return; }
    chatStatus(t('chat.fileSending', { name: f.name }));
    let n = 0;
    try { n = await c.sendFile(f); } catch (_) { n = 0; }
    if (!n) { chatStatus(t('chat.notSent')); return; }
    line(t('chat.you'), concat(t('chat.file'), ' '), fileLink(f.name, f));
    chatStatus(t('chat.fileSent', { name: f.name }));
  });
  c.addEventListener('chat', e => line(peerName(e.detail.peerId), e.detail.text));
  c.addEventListener('file', e => line(peerName(e.detail.peerId), concat(t('chat.file'), ' '), fileLink(e.detail.name, e.detail.blob)));
  c.addEventListener('fileerror', e => chatStatus(t(e.detail.why === 'too-big' ? 'chat.fileRefused' : 'chat.fileBroken', { name: peerName(e.detail.peerId) })));

  // Screen share: the button, and a banner on both sides while it is on.
  const share = $('#share-screen');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) share.hidden = true;
  share.addEventListener('click', async () => {
    if (c.screenStream) { c.stopScreenShare(); return; }
    try {
      await c.startScreenShare();
    } catch (err) {
      console.warn('screen share:', err.name, err.message);
      say('#call-status', t('screen.failed'));
    }
  });
  c.addEventListener('sharing', e => {
    share.setAttribute('aria-pressed', String(e.detail.on));
    put(share, t(e.detail.on ? 'screen.stop' : 'screen.share'));
    say('#screen-self', t('screen.self'));
    $('#screen-self').hidden = !e.detail.on;
  });
  let sharer = null;
  const showScreen = (pid, stream) => {
    const video = $('#remote-screen');
    if (stream) {
      sharer = pid;
      video.srcObject = stream;
      putLabel(video, t('screen.label', { name: peerName(pid) }));
      say('#screen-remote', t('screen.remote', { name: peerName(pid) }));
    } else if (pid === sharer && sharer) {
      sharer = null;
      video.srcObject = null;
    }
    $('#screen-stage').hidden = !sharer;
  };
  c.addEventListener('screen', e => showScreen(e.detail.peerId, e.detail.stream));
  c.addEventListener('peerleft', e => showScreen(e.detail.peerId, null));
  c.addEventListener('closed', () => {
    showScreen(sharer, null);
    $('#screen-self').hidden = true;
    $('#chat-send').disabled = true;
    $('#chat-file').disabled = true;
  });
}

// hostPanel gives the clinician, on the call page, the waiting room
// (Admit, Decline for people who arrive later) and End visit.
function hostPanel(id) {
  const panel = $('#host-panel');
  const alertArrivals = alerter('#host-status');
  const chatUpdate = lobbyChat();
  panel.hidden = false;
  const status = msg => say('#host-status', msg);
  async function refresh() {
    try {
      // The page's own poll: not use of the sign-in session.
      const v = await visit.getVisit(id, { background: true });
      if (v.status === 'ended') { panel.hidden = true; chatUpdate(null); return; }
      alertArrivals([v]);
      chatUpdate(v);
      renderPeople(v, $('#call-waiting-list'), null, act);
    } catch (err) {
      status(errorText(err));
    }
  }
  async function act(fn, pid) {
    try { await fn(id, pid); await refresh(); } catch (err) { status(errorText(err)); }
  }
  guestInviter($('#call-guest-invite'), () => id, status);
  $('#end-visit').addEventListener('click', async () => {
    try { await visit.endVisit(id); status(t('call.visitEnded')); } catch (err) { status(errorText(err)); }
  });
  refresh();
  setInterval(refresh, 2000);
}

// The pages speak the language telegate serves them in, named by <html
// lang>: the one chosen with a language switch on this browser — on these
// pages or on telegate's own (sign-in, errors): one choice, kept by the
// server in a cookie only it reads — else the browser's first preferred
// one the catalogue has, else English. Their own text comes from the
// catalogue too (data-t="key", data-t-label, data-t-placeholder), written
// by the server in the page's language and again here on a switch. The switch changes the words at once and
// tells the server (rememberLanguage), so every page after speaks it.
function rememberLanguage(code) {
  const body = new URLSearchParams({ lang: code });
  return fetch('/.telegate/lang', { method: 'POST', credentials: 'same-origin', headers: { Accept: 'application/json' }, body })
    .then(r => {
      // The server has the choice: say so as a page it served would.
      if (r.ok) document.documentElement.setAttribute('data-lang-chosen', '');
      return r.ok;
    })
    .catch(() => false); // offline: this page only
}
function chooseLanguage(code) {
  setLanguage(code);
  applyLanguage();
  return rememberLanguage(code);
}
// A choice an earlier version kept in this browser's localStorage is
// carried over once, unless one was made since.
function carryOverOldChoice() {
  let old = null;
  try {
    old = localStorage.getItem(oldLanguageStorageKey);
    localStorage.removeItem(oldLanguageStorageKey);
  } catch { return; }
  if (old && languageNames[old] && !document.documentElement.hasAttribute('data-lang-chosen')) chooseLanguage(old);
}
// applyLanguage says the page's words in the language of the moment:
// the first time, its own text (data-t="key" for the text, data-t-label
// for the aria-label, data-t-placeholder), remembered like the rest;
// after a switch, every element's remembered words (put, putLabel: a
// status, Unmute, a date, a chat line's "You", a title with a count),
// said again from their key and fillings — unless the page has put
// something else there since without words (the security code's
// digits), which stays as it is. The words an element started with never
// come back in place of what it says now.
let started = false;
function applyLanguage() {
  document.documentElement.lang = language();
  if (!started) {
    started = true;
    for (const e of document.querySelectorAll('[data-t]')) put(e, t(e.dataset.t));
    for (const e of document.querySelectorAll('[data-t-label]')) putLabel(e, t(e.dataset.tLabel));
  } else {
    for (const e of document.querySelectorAll('*')) {
      const r = shown.get(e);
      if (!r) continue;
      if (r.text && e.textContent === r.text.as) put(e, r.text.w);
      if (r.label && e.getAttribute('aria-label') === r.label.as) putLabel(e, r.label.w);
    }
  }
  for (const e of document.querySelectorAll('[data-t-placeholder]')) e.placeholder = t(e.dataset.tPlaceholder);
  const nav = document.querySelector('#language-switch');
  if (!nav) return;
  nav.setAttribute('aria-label', t('lang.label'));
  for (const b of nav.querySelectorAll('button')) b.setAttribute('aria-pressed', String(b.dataset.lang === language()));
}
function languageSwitch() {
  const nav = el('nav', { id: 'language-switch', class: 'language-switch', 'data-testid': 'language-switch' });
  for (const [code, name] of Object.entries(languageNames)) {
    const b = el('button', { type: 'button', class: 'secondary', lang: code, 'data-lang': code, 'data-testid': 'lang-' + code, text: name });
    b.addEventListener('click', () => chooseLanguage(code));
    nav.append(b);
  }
  (document.querySelector('header') || document.querySelector('#panel') || document.body).append(nav);
}
setLanguage(document.documentElement.lang);
languageSwitch();
applyLanguage();
carryOverOldChoice();

const page = document.body.dataset.page;
({ lobby, join, guest, call })[page]?.();

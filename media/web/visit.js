// telegate visit client — an ES module served at /.telegate/visit.js.
//
// A hospital's own app (served through the same telegate host) can embed the
// whole visit flow with it:
//
//   import * as visit from '/.telegate/visit.js';
//
//   // Clinician: create a visit and hand out the invite link.
//   const v = await visit.createVisit({ title: 'Follow-up', participants: 2 });
//   console.log(v.invite.url);
//   const waiting = (await visit.getVisit(v.id)).participants.filter(p => p.state === 'waiting');
//   await visit.admit(v.id, waiting[0].id);
//
//   // Patient: join with the invite token and wait for admission.
//   const me = await visit.joinVisit(inviteToken);
//   // Meanwhile: check the path through the relay, and chat with the clinic.
//   const r = await visit.networkCheck(me.id); // {verdict: 'good'|'fair'|'poor'|'failed', rtt, loss, bps, …}
//   const chat = new visit.WaitingRoomChat(me.id);
//   chat.addEventListener('message', e => show(e.detail.name, e.detail.text));
//   chat.open();
//   await visit.waitForAdmission(me.id, { onUpdate: v => render(v) });
//
//   // Both: start the call.
//   const call = new visit.Call(v.id, { localStream: await navigator.mediaDevices.getUserMedia({ audio: true, video: true }) });
//   call.addEventListener('remotestream', e => { video.srcObject = e.detail.stream; });
//   call.addEventListener('state', e => console.log(e.detail.peerId, e.detail.state));
//   call.addEventListener('code', e => console.log('security code', e.detail.code));
//   await call.start();
//
// Requests ride on the telegate sign-in session (cookie); state-changing
// requests carry the X-Telegate-CSRF header. Media goes only through the
// TURN relay (iceTransportPolicy "relay") and stays end-to-end encrypted:
// compare the security code aloud — it is derived from both DTLS
// certificate fingerprints and differs if anyone sits in between.

const BASE = '/.telegate/visits';

/** An error answered by the visits API; .status is the HTTP status, .reason the short reason. */
export class VisitError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.reason = body && body.reason;
  }
}

// opts.background marks a request the page sends by itself (a poll): it is
// not use of the sign-in session, so an unattended page is still signed out
// after the idle timeout (X-Telegate-Background: 1).
async function api(method, path, body, opts = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET') {
    init.headers['X-Telegate-CSRF'] = '1';
  }
  if (opts.background) {
    init.headers['X-Telegate-Background'] = '1';
  }
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 204) return null;
  let data = null;
  try { data = await resp.json(); } catch (_) { /* empty body */ }
  if (!resp.ok) throw new VisitError(resp.status, data);
  return data;
}

/** Create a visit (clinician). opts: {title, scheduled (Date|string), participants}. Returns the visit with .invite {url, expires}. */
export function createVisit(opts = {}) {
  const body = { title: opts.title || '' };
  if (opts.scheduled) body.scheduled = new Date(opts.scheduled).toISOString();
  if (opts.participants) body.participants = opts.participants;
  return api('POST', BASE, body);
}
/**
 * The caller's open visits. opts.background: a poll the page makes by itself,
 * which does not keep the sign-in session from its idle timeout.
 */
export async function listVisits(opts = {}) { return (await api('GET', BASE, undefined, opts)).visits; }
/** One visit as the caller may see it. opts.background: a poll the page makes by itself (see listVisits). */
export function getVisit(id, opts = {}) { return api('GET', `${BASE}/${encodeURIComponent(id)}`, undefined, opts); }
/** A fresh invite link {url, expires} (owner). */
export function reissueInvite(id) { return api('POST', `${BASE}/${encodeURIComponent(id)}/invite`); }
/** Admit a waiting participant (owner). */
export function admit(id, participant) { return api('POST', `${BASE}/${encodeURIComponent(id)}/admit`, { participant }); }
/** Decline a waiting participant (owner). */
export function decline(id, participant) { return api('POST', `${BASE}/${encodeURIComponent(id)}/decline`, { participant }); }
/** Remove a participant from the visit (owner). */
export function remove(id, participant) { return api('POST', `${BASE}/${encodeURIComponent(id)}/remove`, { participant }); }
/** End the visit for everyone (owner). */
export function endVisit(id) { return api('POST', `${BASE}/${encodeURIComponent(id)}/end`); }
/**
 * A single-use guest link (owner): label is interpreter, family, clinician
 * or other; name, optional, is shown for the guest. Returns {url, label,
 * name, expires}.
 */
export function createGuestLink(id, label, name) { return api('POST', `${BASE}/${encodeURIComponent(id)}/guests`, { label, name: name || undefined }); }
/**
 * What a guest link (the link= value) is for, without using it: {label,
 * name, expires, signed_in, sign_in_url, without_account}.
 */
export function checkGuestLink(link) { return api('POST', `${BASE}/guest/check`, { link }); }
/**
 * Enter the waiting room with a guest link: as the signed-in account, or
 * (where the gateway allows it) without one, under the name typed.
 */
export function joinAsGuest(link, name) { return api('POST', `${BASE}/guest`, { link, name: name || undefined }); }
/** Enter the waiting room with an invite token (the invite= value of the link). */
export function joinVisit(invite) { return api('POST', `${BASE}/join`, { invite }); }

/**
 * Poll the visit until the caller is admitted (resolves with the visit) or
 * declined, removed, or the visit ends (rejects with a VisitError).
 * opts: {interval ms (default 2000), signal AbortSignal, onUpdate(visit)}.
 */
export async function waitForAdmission(id, opts = {}) {
  const interval = opts.interval || 2000;
  for (;;) {
    if (opts.signal && opts.signal.aborted) throw new DOMException('aborted', 'AbortError');
    const v = await getVisit(id);
    if (opts.onUpdate) opts.onUpdate(v);
    if (v.status === 'ended') throw new VisitError(410, { error: 'The visit has ended.', reason: 'ended' });
    const state = v.self && v.self.state;
    if (state === 'admitted') return v;
    if (state === 'declined' || state === 'removed') {
      throw new VisitError(403, { error: state === 'declined' ? 'The clinician declined this request.' : 'You were removed from the visit.', reason: state });
    }
    await new Promise(r => setTimeout(r, interval));
  }
}

/** The ICE configuration (relay only) for an admitted participant. */
export function iceConfig(id) { return api('GET', `${BASE}/${encodeURIComponent(id)}/ice`); }

function canonicalFingerprint(fp) {
  const s = String(fp).trim();
  const i = s.indexOf(' ');
  if (i < 0) throw new Error('malformed fingerprint');
  return s.slice(0, i).toLowerCase() + ' ' + s.slice(i + 1).trim().toUpperCase();
}

/**
 * The six-digit security code of two DTLS fingerprints ("sha-256 AB:CD:…",
 * RFC 8122 §5): SHA-256 over the two canonical fingerprints sorted and
 * joined by "\n"; the first four bytes, big-endian, modulo 10^6. The same
 * on both sides; different when a certificate was swapped. Matches
 * media.SecurityCode on the server.
 */
export async function securityCode(fpA, fpB) {
  const fps = [canonicalFingerprint(fpA), canonicalFingerprint(fpB)].sort();
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(fps[0] + '\n' + fps[1]));
  const n = new DataView(digest).getUint32(0, false) % 1000000;
  return String(n).padStart(6, '0');
}

function sdpFingerprint(sdp) {
  const m = /^a=fingerprint:(\S+) (\S+)/m.exec(sdp || '');
  return m ? `${m[1]} ${m[2]}` : null;
}

/** Selected-pair, certificate and inbound-video facts from RTCPeerConnection.getStats (W3C webrtc-stats). */
export async function callStats(pc) {
  const report = await pc.getStats();
  const byId = new Map();
  report.forEach(s => byId.set(s.id, s));
  const out = { localCandidateType: '', remoteCandidateType: '', rtt: null, inboundVideoBytes: 0, inboundVideoFrames: 0, inboundAudioBytes: 0,
    packetsLost: 0, framesPerSecond: null, frameWidth: null, localFingerprint: null, remoteFingerprint: null,
    transportBytesReceived: 0 };
  let transport = null;
  report.forEach(s => { if (s.type === 'transport' && !transport) transport = s; });
  let pair = transport && transport.selectedCandidatePairId ? byId.get(transport.selectedCandidatePairId) : null;
  if (!pair) report.forEach(s => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  if (pair) {
    const l = byId.get(pair.localCandidateId);
    const r = byId.get(pair.remoteCandidateId);
    out.localCandidateType = (l && l.candidateType) || '';
    out.remoteCandidateType = (r && r.candidateType) || '';
    out.rtt = pair.currentRoundTripTime ?? null;
  }
  if (transport) {
    out.transportBytesReceived = transport.bytesReceived || 0;
    const lc = byId.get(transport.localCertificateId);
    const rc = byId.get(transport.remoteCertificateId);
    if (lc) out.localFingerprint = `${lc.fingerprintAlgorithm} ${lc.fingerprint}`;
    if (rc) out.remoteFingerprint = `${rc.fingerprintAlgorithm} ${rc.fingerprint}`;
  }
  report.forEach(s => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video') {
      out.inboundVideoBytes += s.bytesReceived || 0;
      out.inboundVideoFrames += s.framesDecoded || 0;
      out.framesPerSecond = s.framesPerSecond ?? out.framesPerSecond;
      out.frameWidth = s.frameWidth ?? out.frameWidth;
    } else if (s.kind === 'audio') {
      out.inboundAudioBytes += s.bytesReceived || 0;
    }
    out.packetsLost += s.packetsLost || 0;
  });
  return out;
}

// ------------------------------------------------------ pre-call check ---

/** localStorage key of the devices chosen on this browser: {videoinput, audioinput, audiooutput} device ids. */
export const DEVICES_STORAGE_KEY = 'telegate.devices';

/** The devices chosen on this browser ({} when none, or storage is off). */
export function savedDevices() {
  try {
    const v = JSON.parse(localStorage.getItem(DEVICES_STORAGE_KEY) || '{}');
    return v && typeof v === 'object' ? v : {};
  } catch (_) { return {}; }
}

/** Remember a chosen device: kind is 'videoinput', 'audioinput' or 'audiooutput'. */
export function saveDevice(kind, deviceId) {
  const v = savedDevices();
  if (deviceId) v[kind] = String(deviceId); else delete v[kind];
  try { localStorage.setItem(DEVICES_STORAGE_KEY, JSON.stringify(v)); } catch (_) { /* private mode: this page only */ }
}

/**
 * getUserMedia constraints for the chosen devices: {audio, video} as for
 * navigator.mediaDevices.getUserMedia, each chosen device exactly; video
 * at 640×480 ideally. getUserMediaChosen falls back to any device when a
 * chosen one is gone.
 */
export function mediaConstraints(devices = savedDevices()) {
  const video = { width: { ideal: 640 }, height: { ideal: 480 } };
  if (devices.videoinput) video.deviceId = { exact: devices.videoinput };
  const audio = devices.audioinput ? { deviceId: { exact: devices.audioinput } } : true;
  return { audio, video };
}

/**
 * getUserMedia(c) with c from mediaConstraints: when a chosen device is
 * gone (OverconstrainedError, NotFoundError) it asks again for any device
 * of that kind.
 */
export async function getUserMediaChosen(c) {
  try {
    return await navigator.mediaDevices.getUserMedia(c);
  } catch (err) {
    const chosen = k => c[k] && typeof c[k] === 'object' && c[k].deviceId;
    if ((err.name !== 'OverconstrainedError' && err.name !== 'NotFoundError') || (!chosen('audio') && !chosen('video'))) throw err;
    // Let go of one chosen device at a time (the camera first), then both.
    const without = kinds => {
      const out = { ...c };
      for (const k of kinds) {
        if (!chosen(k)) continue;
        const { deviceId: _, ...rest } = c[k];
        out[k] = Object.keys(rest).length ? rest : true;
      }
      return out;
    };
    const tries = [['video'], ['audio'], ['audio', 'video']].filter(ks => ks.some(chosen));
    for (const [i, ks] of tries.entries()) {
      try {
        return await navigator.mediaDevices.getUserMedia(without(ks));
      } catch (e) {
        if (i === tries.length - 1 || (e.name !== 'OverconstrainedError' && e.name !== 'NotFoundError')) throw e;
      }
    }
    throw err;
  }
}

/** Start a pre-call check (waiting or admitted participant): the two relay configurations {caller, callee, expires}. */
export function startCheck(id) { return api('POST', `${BASE}/${encodeURIComponent(id)}/check`); }

/**
 * Thresholds of networkCheck's verdict: "good" at most GOOD.rtt seconds
 * round trip, GOOD.loss of probes lost and at least GOOD.bps available;
 * "fair" within FAIR; otherwise "poor"; "failed" when no relayed
 * connection came up within CHECK_CONNECT_MS.
 */
export const CHECK_GOOD = { rtt: 0.3, loss: 0.05, bps: 250000 };
export const CHECK_FAIR = { rtt: 0.8, loss: 0.15, bps: 100000 };
export const CHECK_CONNECT_MS = 10000;

function testTrack() {
  const canvas = Object.assign(document.createElement('canvas'), { width: 320, height: 240 });
  const g = canvas.getContext('2d');
  let n = 0;
  const timer = setInterval(() => {
    n++;
    g.fillStyle = `hsl(${(n * 7) % 360} 60% 50%)`;
    g.fillRect(0, 0, 320, 240);
    g.fillStyle = '#fff';
    g.fillRect((n * 5) % 320, 100, 40, 40);
  }, 66);
  const [track] = canvas.captureStream(15).getVideoTracks();
  track.addEventListener('ended', () => clearInterval(timer));
  return { track, stop: () => { clearInterval(timer); track.stop(); } };
}

/**
 * Measure the path a call would take: two peer connections of this page,
 * relay only, with the pre-call check's own credentials (startCheck), one
 * sending video (opts.track, cloned, or a drawn test picture) and numbered
 * probes on an unreliable data channel that the other echoes. Resolves
 * with {verdict: 'good'|'fair'|'poor'|'failed', rtt (s, median of the
 * echoes), loss (0…1, probes without an echo), bps (available outgoing
 * bitrate, bits/s: the larger of the browser's estimate and the video
 * actually sent), localCandidateType, remoteCandidateType (of the
 * selected pair: 'relay' both when the relay carried it)}.
 * opts: {track, probes (default 40), durationMs (default 4000)}.
 */
export async function networkCheck(id, opts = {}) {
  const cfg = await startCheck(id);
  const probes = opts.probes ?? 40;
  const duration = opts.durationMs ?? 4000;
  const conf = c => ({ iceServers: c.iceServers, iceTransportPolicy: 'relay', bundlePolicy: 'max-bundle' });
  const a = new RTCPeerConnection(conf(cfg.caller));
  const b = new RTCPeerConnection(conf(cfg.callee));
  const src = opts.track ? { track: opts.track.clone(), stop() { this.track.stop(); } } : testTrack();
  const out = { verdict: 'failed', rtt: null, loss: 1, bps: 0, localCandidateType: '', remoteCandidateType: '' };
  try {
    a.onicecandidate = e => { if (e.candidate && e.candidate.candidate) b.addIceCandidate(e.candidate).catch(() => {}); };
    b.onicecandidate = e => { if (e.candidate && e.candidate.candidate) a.addIceCandidate(e.candidate).catch(() => {}); };
    const probe = a.createDataChannel('check', { ordered: false, maxRetransmits: 0 });
    b.ondatachannel = e => { const ch = e.channel; ch.onmessage = m => { if (ch.readyState === 'open') ch.send(m.data); }; };
    a.addTrack(src.track, new MediaStream([src.track]));
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    const open = await new Promise(resolve => {
      if (probe.readyState === 'open') { resolve(true); return; }
      const timer = setTimeout(() => resolve(false), CHECK_CONNECT_MS);
      probe.onopen = () => { clearTimeout(timer); resolve(true); };
    });
    if (!open) return out;
    const sent = new Map();
    const rtts = [];
    probe.onmessage = m => {
      let seq;
      try { seq = JSON.parse(m.data).seq; } catch (_) { return; }
      const t0 = sent.get(seq);
      if (t0 !== undefined) { rtts.push((performance.now() - t0) / 1000); sent.delete(seq); }
    };
    const pad = 'x'.repeat(200);
    const bytes0 = await outboundVideoBytes(a);
    const t0 = performance.now();
    for (let i = 0; i < probes; i++) {
      sent.set(i, performance.now());
      if (probe.readyState === 'open') probe.send(JSON.stringify({ seq: i, pad }));
      await new Promise(r => setTimeout(r, duration / probes));
    }
    await new Promise(r => setTimeout(r, 1000)); // the last echoes
    const st = await callStats(a);
    const report = await a.getStats();
    let estimate = 0;
    report.forEach(s => { if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) estimate = Math.max(estimate, s.availableOutgoingBitrate); });
    const sentBps = ((await outboundVideoBytes(a)) - bytes0) * 8 / ((performance.now() - t0) / 1000);
    rtts.sort((x, y) => x - y);
    out.rtt = rtts.length ? rtts[Math.floor(rtts.length / 2)] : null;
    out.loss = (probes - rtts.length) / probes;
    out.bps = Math.round(Math.max(estimate, sentBps));
    out.localCandidateType = st.localCandidateType;
    out.remoteCandidateType = st.remoteCandidateType;
    const within = th => out.rtt !== null && out.rtt <= th.rtt && out.loss <= th.loss && out.bps >= th.bps;
    out.verdict = within(CHECK_GOOD) ? 'good' : within(CHECK_FAIR) ? 'fair' : rtts.length ? 'poor' : 'failed';
    return out;
  } finally {
    src.stop();
    a.close();
    b.close();
  }
}

async function outboundVideoBytes(pc) {
  let n = 0;
  (await pc.getStats()).forEach(s => { if (s.type === 'outbound-rtp' && s.kind === 'video') n += s.bytesSent || 0; });
  return n;
}

// --------------------------------------------------------- sockets ---

/** A socket not open this long after it was made is given up (ms). */
export const SOCKET_OPEN_TIMEOUT_MS = 10000;

/**
 * openSocket opens a WebSocket to path on this page's origin and calls
 * onLost(code, reason) exactly once when it is gone: closed (its close
 * code), failed (1006: browsers do not always follow the error of a
 * connection that could not be made with a close event), or still not
 * open after SOCKET_OPEN_TIMEOUT_MS (1006). onMessage gets each message's
 * JSON (others are dropped). A socket that cannot even be made (the
 * constructor throws) is lost at once, on the next turn.
 */
export function openSocket(path, onMessage, onLost) {
  let gone = false;
  let ws = null;
  const lost = (code, reason = '') => {
    if (gone) return;
    gone = true;
    clearTimeout(timer);
    if (ws) { try { ws.close(); } catch (_) { /* closed */ } }
    onLost(code, reason);
  };
  const timer = setTimeout(() => { if (!ws || ws.readyState !== WebSocket.OPEN) lost(1006); }, SOCKET_OPEN_TIMEOUT_MS);
  try {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    ws = new WebSocket(`${scheme}//${location.host}${path}`);
  } catch (err) {
    console.warn('socket:', err.name, err.message);
    setTimeout(() => lost(1006), 0);
    return null;
  }
  ws.onopen = () => clearTimeout(timer);
  ws.onmessage = ev => {
    let m;
    try { m = JSON.parse(ev.data); } catch (_) { return; }
    onMessage(m);
  };
  ws.onerror = () => { if (ws.readyState !== WebSocket.OPEN) lost(1006); };
  ws.onclose = ev => lost(ev.code, ev.reason);
  return ws;
}

// backoffWait is the wait (ms) before o (with a backoff field, reset to
// BACKOFF_FIRST_MS by each welcome) reopens its socket: its backoff with
// up to a quarter of jitter; the backoff doubles, up to BACKOFF_MAX_MS.
function backoffWait(o) {
  const wait = o.backoff * (1 + Math.random() / 4);
  o.backoff = Math.min(o.backoff * 2, BACKOFF_MAX_MS);
  return wait;
}

// -------------------------------------------------- waiting-room chat ---

/** Most characters in one waiting-room chat message (the server's bound too). */
export const WAITING_CHAT_MAX_CHARS = 1000;

/**
 * The waiting-room chat of a visit, for a waiting participant or the
 * clinician (a WebSocket through the gateway: not stored, not logged).
 * It reconnects with backoff while the page is in the waiting room.
 *
 * Events (CustomEvent .detail): open {self}, message {from, name, to,
 * text, at} (the sender stamped by the server), closed {code, reason}
 * (for good: the visit ended, the participant left the waiting room).
 */
export class WaitingRoomChat extends EventTarget {
  constructor(visitId) {
    super();
    this.visitId = visitId;
    this.ws = null;
    this.closed = false;
    this.backoff = BACKOFF_FIRST_MS;
    this.self = null;
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  /** Open the socket. */
  open() {
    if (this.closed) return;
    const ws = openSocket(`${BASE}/${encodeURIComponent(this.visitId)}/chat`, m => {
      if (m.type === 'welcome') { this.self = m.self; this.backoff = BACKOFF_FIRST_MS; this.emit('open', { self: m.self }); }
      if (m.type === 'chat' && typeof m.text === 'string') this.emit('message', { from: m.from, name: m.name, to: m.to, text: m.text, at: Date.now() });
    }, (code, reason) => {
      if (this.ws !== ws || this.closed) return;
      // Over for good: normal end (left the waiting room), a broken rule,
      // the visit's end, removal, sign-out.
      if ([1000, 1008, 4003, 4004, 4005].includes(code)) { this.close(code, reason); return; }
      setTimeout(() => this.open(), backoffWait(this));
    });
    this.ws = ws;
    this.pingTimer = this.pingTimer || setInterval(() => this.sendRaw({ type: 'ping' }), 25000);
  }

  sendRaw(m) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(m)); return true; }
    return false;
  }

  /** Send text (1 … WAITING_CHAT_MAX_CHARS characters; RangeError otherwise); to: the waiting participant (clinician only). Returns whether it went out. */
  send(text, to) {
    text = String(text);
    if (!text.trim() || text.length > WAITING_CHAT_MAX_CHARS) throw new RangeError('chat message length');
    const m = { type: 'chat', text };
    if (to) m.to = to;
    return this.sendRaw(m);
  }

  /** Close for good. */
  close(code = 1000, reason = '') {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pingTimer);
    if (this.ws) { try { this.ws.close(1000); } catch (_) { /* closed */ } }
    this.emit('closed', { code, reason });
  }
}

/** Grace before an ICE connection that is `disconnected` is restarted (ms). */
export const RESTART_GRACE_MS = 1000;

/**
 * Limits of chat and files in the call (the data channel, RFC 8831):
 * a chat message is at most CHAT_MAX_CHARS UTF-16 code units; a file at
 * most FILE_MAX_BYTES, sent in binary messages of FILE_CHUNK_BYTES (well
 * under every browser's SCTP max-message-size, RFC 8841 §6); a file name
 * at most FILE_NAME_MAX_CHARS. The receiving side enforces them too.
 */
export const CHAT_MAX_CHARS = 2000;
export const FILE_MAX_BYTES = 8 * 1024 * 1024;
export const FILE_CHUNK_BYTES = 64 * 1024;
export const FILE_NAME_MAX_CHARS = 200;
// Sending waits while more than this is queued on a data channel (bytes).
const DC_HIGH_WATER = 1024 * 1024;

// Signaling reconnect backoff (ms): doubled from the first to the last,
// with up to a quarter of jitter; reset by each welcome.
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;

// An ICE restart that has not brought the connection up (both halves
// of its negotiation done, ICE connected) is tried again after
// RESTART_RETRY_FIRST_MS, then after twice as long each time, up to
// RESTART_RETRY_MAX_MS: an offer or answer can be lost with a signaling
// socket, or a relay can still be coming back, and one try is not
// enough.
const RESTART_RETRY_FIRST_MS = 6000;
const RESTART_RETRY_MAX_MS = 24000;

// After a relay-moved message, ICE restarts from peers are the move's for
// MOVE_WINDOW_MS, not a loss.
const MOVE_WINDOW_MS = 20000;

// The longest a restart waits for fresh ICE servers (ms), and the least
// time between two such waits for one peer's restart offers (ms).
const ICE_FETCH_WAIT_MS = 3000;
const ICE_REUSE_MS = 2000;

// An offer that has had no answer after OFFER_ANSWER_WAIT_MS (it or its
// answer was lost with a signaling socket, or the two sides' offers
// crossed and neither was answered) is rolled back and made again as an
// ICE restart, which the retries above then carry on.
const OFFER_ANSWER_WAIT_MS = RESTART_RETRY_FIRST_MS;

// The most SDP session ids of a peer's closed connections kept per peer
// (sdpSession): a description that carries one is late and ignored.
const STALE_SESSIONS_MAX = 8;

// sdpSession is the session id of sdp's origin line (RFC 8866 §5.2),
// "" when none: the same for every description of one RTCPeerConnection
// (its restarts included, RFC 8829 §5.2.2), another for a new one.
function sdpSession(sdp) {
  const m = /^o=\S+ (\S+) /m.exec(sdp || '');
  return m ? m[1] : '';
}

// iceUfrag is the first ICE username fragment in sdp ("" when none).
function iceUfrag(sdp) {
  const m = /^a=ice-ufrag:(\S+)/m.exec(sdp || '');
  return m ? m[1] : '';
}

function randomSession() {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(b, x => x.toString(16).padStart(2, '0')).join('');
}

/**
 * A call in one visit: one RTCPeerConnection per other participant, relay
 * only, one DTLS certificate for the whole page (so the fingerprint the
 * server sees never changes without an ICE restart).
 *
 * A "relay-moved" message (the visit's relay node is draining) fetches
 * fresh relay credentials and restarts ICE before the old relay goes.
 *
 * Recovery: an ICE connection `disconnected` for RESTART_GRACE_MS, or
 * `failed`, is restarted — with fresh relay credentials fetched first —
 * by either side, without glare (perfect negotiation: the participant with
 * the lower id is impolite and wins a collision; the polite one rolls
 * back); a restart that has not brought the connection up within
 * seconds is tried again, with backoff. A peer's ICE restart outside a
 * relay move is a loss on this side too (lost, restarting, then
 * recovered once media arrives again), so both pages say so. Relay credentials are fetched again before they expire, for the
 * next restart. The signaling socket reconnects with backoff and resumes:
 * the page's call session (a random id sent as ?session=) tells the
 * others it is the same page, so the peer connections are kept — but a
 * peer told it left (peer-left) closed its end, and makes one fresh
 * connection when it is back (a connection is known by its SDP session
 * id: an offer from another one of the peer's replaces this page's, and
 * a description from one closed here is ignored); a reload is a new
 * session, and its peers start afresh. An offer unanswered for
 * OFFER_ANSWER_WAIT_MS is rolled back and made again as an ICE restart. The security code is
 * computed again after every (re)connection.
 *
 * opts: {localStream, media: {audio, video} ("on"|"off"|"blocked"|"absent"),
 * restartGraceMs}.
 *
 * Events (CustomEvent .detail):
 *   welcome {self, peers}, peer {peer} (joined), remotestream {peerId, stream},
 *   state {peerId, state} (RTCPeerConnectionState), code {peerId, code, changed},
 *   stats {peerId, stats} (every second),
 *   peerleft {peerId, peer} (gone from the call, whichever way; peer: who they were, {id, name, role, label, session}),
 *   media {peerId, audio, video} (what the peer sends),
 *   iceerror {peerId, code, text, url} (a TURN server error while gathering),
 *   lost {peerId, state, at} (the connection is disconnected or failed; at: epoch ms),
 *   restarting {peerId, why} (an ICE restart begins), recovered {peerId, ms, at} (ms since lost),
 *   reconnecting {code, reason} (signaling lost; it reconnects by itself),
 *   resumed {} (signaling back),
 *   closed {code, reason, why: 'ended'|'removed'|'signed-out'|'replaced'|'refused'|'hangup'|'network'},
 *   chat {peerId, text, at} (a chat message from a peer; at: epoch ms),
 *   file {peerId, name, size, type, blob} (a file from a peer, complete),
 *   fileerror {peerId, name, why: 'too-big'|'broken'} (a file refused or cut short),
 *   screen {peerId, stream} (a peer's screen share began: stream; or ended: null),
 *   sharing {on} (this page's own screen share began or ended).
 *
 * Chat and files go over one data channel per peer connection
 * (negotiated, id 0, ordered and reliable): inside the same DTLS
 * association as the media, end to end, so the gateway and the relay
 * see only ciphertext. A chat message is a JSON text message
 * {t: "chat", text}; a file is {t: "file", name, size, type}, its bytes
 * as binary messages, then {t: "file-end"}. A screen share is a second
 * video track on every peer connection (negotiationneeded renegotiates),
 * announced first as {t: "screen", on: true, stream: <MediaStream id>}
 * and withdrawn with {t: "screen", on: false}.
 */
export class Call extends EventTarget {
  constructor(visitId, opts = {}) {
    super();
    this.visitId = visitId;
    this.localStream = opts.localStream || null;
    this.media = opts.media || { audio: this.localStream ? 'on' : 'absent', video: this.localStream ? 'on' : 'absent' };
    this.restartGraceMs = opts.restartGraceMs ?? RESTART_GRACE_MS;
    this.session = randomSession();
    this.pcs = new Map();      // peer id → RTCPeerConnection
    this.nego = new Map();     // peer id → {makingOffer, ignoreOffer, polite, lostAt, timer}
    this.peers = new Map();    // peer id → {id, name, role, label, session}: who is in the call, as the server says
    this.leftSessions = new Map(); // peer id → call session of theirs whose connection peer-left closed
    this.staleSessions = new Map(); // peer id → SDP session ids of their closed connections (at most STALE_SESSIONS_MAX)
    this.codes = new Map();
    this.peerMedia = new Map(); // peer id → {audio, video} as the peer says
    this.self = null;
    this.ws = null;
    this.closed = false;
    this.statsTimer = null;
    this.backoff = BACKOFF_FIRST_MS;
    this.dcs = new Map();      // peer id → RTCDataChannel (chat and files)
    this.screenStream = null;  // this page's screen share, while on
    this.movingUntil = 0;      // performance.now() until which a peer's ICE restart is a relay move's
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  /** Fetch ICE servers, make the certificate, open the signaling socket. */
  async start() {
    await this.refreshIce();
    this.certificate = await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });
    this.connect();
    this.statsTimer = setInterval(() => this.pollStats(), 1000);
  }

  /**
   * Fetch fresh relay credentials, hand them to every peer connection (for
   * its next gathering) and schedule the next fetch before they expire.
   */
  async refreshIce() {
    const at = Date.now();
    this.ice = await iceConfig(this.visitId);
    this.iceAt = at;
    for (const pc of this.pcs.values()) {
      try { pc.setConfiguration(this.rtcConfig()); } catch (_) { /* closed meanwhile */ }
    }
    clearTimeout(this.iceTimer);
    const left = new Date(this.ice.expires).getTime() - Date.now();
    if (!this.closed && left > 0) {
      this.iceTimer = setTimeout(() => this.refreshIce().catch(() => {}), Math.max(1000, left * 0.8));
    }
  }

  // freshIce fetches the ICE servers again before a connection gathers
  // (the relay admits the participant again at that fetch, and the
  // credentials are new): always before a restart, either side's, or a
  // reconnect; with onlyIfOld, for a new connection, only when less than
  // half their lifetime is left — the scheduled refresh can come late on a
  // busy page, and a connection that gathers with expired credentials gets
  // no relay candidate at all (relay only: no connection). It waits at
  // most ICE_FETCH_WAIT_MS; on failure the last ones may still do. One
  // fetch at a time serves every caller.
  async freshIce(onlyIfOld = false) {
    const until = new Date(this.ice.expires).getTime();
    if (onlyIfOld && until - Date.now() > (until - this.iceAt) / 2) return;
    let timer;
    const fetched = this.iceFetch ||= this.refreshIce().finally(() => { this.iceFetch = null; });
    fetched.catch(() => { /* the last ones */ });
    try {
      await Promise.race([fetched, new Promise(r => { timer = setTimeout(r, ICE_FETCH_WAIT_MS); })]);
    } catch (_) { /* the last ones */ } finally { clearTimeout(timer); }
  }

  rtcConfig() {
    return {
      iceServers: this.ice.iceServers,
      iceTransportPolicy: 'relay',
      bundlePolicy: 'max-bundle',
      certificates: [this.certificate],
    };
  }

  connect() {
    const ws = openSocket(`${BASE}/${encodeURIComponent(this.visitId)}/signal?session=${this.session}`, m => {
      // One message at a time, in order: a candidate waits for the
      // description before it.
      this.inbox = (this.inbox || Promise.resolve())
        .then(() => this.onSignal(m))
        .catch(err => console.warn('signaling:', m.type, err.name, err.message));
    }, (code, reason) => {
      if (this.ws !== ws || this.closed) return;
      const why = { 4004: 'ended', 4003: 'removed', 4005: 'signed-out', 4009: 'replaced', 4001: 'refused', 1008: 'refused' }[code];
      if (why) {
        this.stop(why, code, reason);
        return;
      }
      // 1001: the node is restarting; otherwise network trouble. Either
      // way the visit goes on: rejoin with backoff; the peer connections
      // keep their media meanwhile.
      this.emit('reconnecting', { code, reason });
      setTimeout(() => { if (!this.closed) this.reconnect(); }, backoffWait(this));
    });
    this.ws = ws;
    this.pingTimer = this.pingTimer || setInterval(() => this.send({ type: 'ping' }), 25000);
  }

  /** Fetch fresh relay credentials (the node may have changed), then reopen the socket. */
  async reconnect() {
    await this.freshIce();
    if (!this.closed) this.connect();
  }

  send(m) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  /** Tell the others what this page sends: {audio, video}, each "on"|"off"|"blocked"|"absent". */
  setMedia(media) {
    this.media = { ...this.media, ...media };
    this.send({ type: 'media', media: this.media });
  }

  /**
   * pid is gone from the call, however they went (hung up, removed, their
   * page closed, their signaling lost for good, their node gone; told by
   * peer-left, or by a welcome that lists them neither here nor away):
   * nothing of theirs is kept, so nothing shows them any more.
   */
  peerGone(pid) {
    const peer = this.peers.get(pid) || null;
    if (peer && this.pcs.has(pid)) this.leftSessions.set(pid, peer.session);
    this.dropPeer(pid);
    this.peers.delete(pid);
    this.peerMedia.delete(pid);
    this.emit('peerleft', { peerId: pid, peer });
  }

  async onSignal(m) {
    switch (m.type) {
      case 'welcome': {
        await this.freshIce(true); // for the connections made below
        if (this.closed) break;
        const resumed = this.self !== null;
        this.self = m.self;
        this.backoff = BACKOFF_FIRST_MS;
        for (const p of m.peers || []) {
          const known = this.peers.get(p.id);
          this.peers.set(p.id, p);
          // The same page of that peer as before: keep the connection.
          if (known && known.session === p.session && this.pcs.has(p.id)) continue;
          this.dropPeer(p.id);
          this.makePC(p.id); // negotiationneeded sends the offer
        }
        this.send({ type: 'media', media: this.media });
        this.emit('welcome', { self: m.self, peers: m.peers || [] });
        if (resumed) {
          // Back after signaling was lost: one who left the call meanwhile
          // (hung up, removed: neither here nor away, as the server
          // says) is gone; restart what broke meanwhile with the peers
          // that are here; one still away is restarted when it is back
          // (peer-joined), since an offer sent to it now would be lost.
          const here = new Set((m.peers || []).map(p => p.id));
          if (Array.isArray(m.away)) {
            const away = new Set(m.away);
            for (const pid of [...this.peers.keys()]) if (!here.has(pid) && !away.has(pid)) this.peerGone(pid);
          }
          for (const [pid, pc] of this.pcs) {
            const n = this.nego.get(pid);
            if (!here.has(pid)) n.pendingRestart = true;
            else if (this.needsRestart(pc, n)) this.restart(pid, 'resumed');
          }
          this.emit('resumed', {});
        }
        break;
      }
      case 'peer-joined': {
        const known = this.peers.get(m.peer.id);
        const left = this.leftSessions.get(m.peer.id);
        this.leftSessions.delete(m.peer.id);
        this.peers.set(m.peer.id, m.peer);
        if (!known && left && left === m.peer.session && !this.pcs.has(m.peer.id)) {
          // The same page, back after its signaling was lost, whose
          // connection peer-left closed here: it still holds its end of
          // that one, so this side makes the one fresh connection (its
          // SDP session id tells the peer to replace its own).
          await this.freshIce(true);
          if (this.closed) break;
          if (!this.pcs.has(m.peer.id)) this.makePC(m.peer.id); // negotiationneeded sends the offer
        } else if (!known || known.session !== m.peer.session) {
          // Another page of that participant (a reload): its offer follows.
          this.dropPeer(m.peer.id);
        } else {
          // The same page, back after its signaling was lost: whatever was
          // sent to it meanwhile (an offer, an answer) never arrived.
          const pc = this.pcs.get(m.peer.id);
          const n = this.nego.get(m.peer.id);
          if (pc && n && this.needsRestart(pc, n)) this.restart(m.peer.id, 'resumed');
        }
        this.send({ type: 'media', to: m.peer.id, media: this.media });
        this.emit('peer', { peer: m.peer });
        break;
      }
      case 'peer-left':
        this.peerGone(m.id);
        break;
      case 'offer':
      case 'answer':
        await this.onDescription(m.from, { type: m.type, sdp: m.sdp });
        break;
      case 'candidate': {
        const pc = this.pcs.get(m.from);
        const n = this.nego.get(m.from);
        if (!pc) break;
        try {
          await pc.addIceCandidate(m.candidate);
        } catch (err) {
          if (!n || !n.ignoreOffer) throw err;
        }
        break;
      }
      case 'media':
        if (!this.peers.has(m.from)) break; // from someone gone meanwhile
        this.peerMedia.set(m.from, m.media);
        this.emit('media', { peerId: m.from, audio: m.media.audio, video: m.media.video });
        break;
      case 'relay-moved':
        // The visit's relay moved (its node is draining): fresh ICE
        // servers, and an ICE restart toward the new relay while the old
        // one still carries the call. The impolite side of each pair
        // restarts; the polite one answers with the fresh servers.
        this.movingUntil = performance.now() + MOVE_WINDOW_MS;
        await this.freshIce();
        for (const [pid, n] of this.nego) if (!n.polite) this.restart(pid, 'moved');
        break;
      case 'ended': this.stop('ended'); break;
      case 'removed': this.stop('removed'); break;
      default: break;
    }
  }

  // Perfect negotiation (W3C WebRTC §10.7): a description from peerId.
  // A connection is known by its SDP session id (sdpSession): a
  // description from a connection of the peer's already closed here is
  // late and ignored; an offer from another connection than the one
  // this page has with the peer (the peer closed ours, on peer-left, and
  // made a fresh one) replaces ours with a fresh one that answers it.
  async onDescription(peerId, desc) {
    const sess = sdpSession(desc.sdp);
    const stale = this.staleSessions.get(peerId);
    if (sess && stale && stale.includes(sess)) return;
    let pc = this.pcs.get(peerId);
    const had = pc && pc.remoteDescription && sdpSession(pc.remoteDescription.sdp);
    if (pc && desc.type === 'offer' && had && sess && had !== sess) {
      this.dropPeer(peerId);
      pc = null;
    }
    if (!pc) {
      if (desc.type !== 'offer') return;
      await this.freshIce(true);
      if (this.closed) return;
      pc = this.pcs.get(peerId) || this.makePC(peerId, true);
    }
    const n = this.nego.get(peerId);
    const collision = desc.type === 'offer' && (n.makingOffer || pc.signalingState !== 'stable');
    n.ignoreOffer = !n.polite && collision;
    if (n.ignoreOffer) return;
    const restarted = desc.type === 'offer' && pc.remoteDescription && iceUfrag(desc.sdp) !== iceUfrag(pc.remoteDescription.sdp);
    await pc.setRemoteDescription(desc); // a polite peer rolls back its own offer
    if (restarted) {
      this.peerRestarted(peerId, pc, n);
      // The answer gathers anew too — with fresh servers, but a peer that
      // restarts again within ICE_REUSE_MS gets no second wait: one sending
      // restart offers as fast as signaling lets it cannot hold this page's
      // messages (every peer's) behind fetches.
      if (performance.now() - n.restartFetchAt >= ICE_REUSE_MS) {
        n.restartFetchAt = performance.now();
        await this.freshIce();
        if (this.pcs.get(peerId) !== pc) return;
      }
    }
    if (!n.tracksAdded) this.addLocalTracks(pc, n);
    if (desc.type === 'offer') {
      await pc.setLocalDescription();
      this.send({ type: 'answer', to: peerId, sdp: pc.localDescription.sdp });
    }
  }

  // Local tracks, and a receive-only transceiver for a kind this page
  // does not send, so the others' audio and video still arrive.
  addLocalTracks(pc, n) {
    n.tracksAdded = true;
    this.openChannel(pc, n.peerId);
    const tracks = this.localStream ? this.localStream.getTracks() : [];
    for (const t of tracks) pc.addTrack(t, this.localStream);
    if (this.screenStream) for (const t of this.screenStream.getVideoTracks()) n.screenSender = pc.addTrack(t, this.screenStream);
    for (const kind of ['audio', 'video']) {
      if (tracks.some(t => t.kind === kind)) continue;
      const existing = pc.getTransceivers().find(tr => tr.receiver.track && tr.receiver.track.kind === kind);
      if (!existing) pc.addTransceiver(kind, { direction: 'recvonly' });
    }
  }

  makePC(peerId, answering = false) {
    const pc = new RTCPeerConnection(this.rtcConfig());
    const n = { peerId, makingOffer: false, ignoreOffer: false, polite: this.self > peerId, tracksAdded: false, lostAt: 0, timer: null, retryTimer: null, answerTimer: null, retries: 0, restartFetchAt: -Infinity,
      cameraId: null, screenId: null, streams: new Map(), incoming: null, screenSender: null };
    this.pcs.set(peerId, pc);
    this.nego.set(peerId, n);
    // The answering side adds its tracks after the remote offer, into the
    // transceivers that offer made (no second negotiation).
    if (!answering) this.addLocalTracks(pc, n);
    pc.onnegotiationneeded = async () => {
      try {
        n.makingOffer = true;
        await pc.setLocalDescription();
        const sdp = pc.localDescription.sdp;
        this.send({ type: 'offer', to: peerId, sdp });
        clearTimeout(n.answerTimer);
        n.answerTimer = setTimeout(() => {
          n.answerTimer = null;
          if (this.closed || this.pcs.get(peerId) !== pc) return;
          if (pc.signalingState === 'have-local-offer' && pc.localDescription && pc.localDescription.sdp === sdp) this.restart(peerId, 'unanswered');
        }, OFFER_ANSWER_WAIT_MS * (1 + Math.random() / 4));
      } catch (err) {
        console.warn('negotiation:', err.name, err.message);
      } finally {
        n.makingOffer = false;
      }
    };
    pc.onicecandidate = e => {
      if (e.candidate && e.candidate.candidate) this.send({ type: 'candidate', to: peerId, candidate: e.candidate.toJSON() });
    };
    pc.onicecandidateerror = e => {
      console.warn('ICE candidate error', e.errorCode, e.errorText, e.url);
      this.emit('iceerror', { peerId, code: e.errorCode, text: e.errorText, url: e.url });
    };
    pc.ontrack = e => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      n.streams.set(stream.id, stream);
      // The announced screen stream, or the peer's first (camera) stream;
      // another one waits for its announcement.
      if (stream.id === n.screenId) this.emit('screen', { peerId, stream });
      else if (!n.cameraId || n.cameraId === stream.id) {
        n.cameraId = stream.id;
        this.emit('remotestream', { peerId, stream });
      }
    };
    pc.oniceconnectionstatechange = () => this.watchIce(peerId, pc, n);
    pc.onconnectionstatechange = () => {
      this.emit('state', { peerId, state: pc.connectionState });
      if (pc.connectionState === 'connected') this.updateCode(peerId, pc);
    };
    return pc;
  }

  // Restart ICE when the connection is lost: at once on `failed`, after
  // the grace on `disconnected` — or on a silent transport (st
  // "silent", from pollStats), which a browser reports as disconnected
  // only seconds later.
  watchIce(peerId, pc, n, silent = false) {
    const st = silent ? 'disconnected' : pc.iceConnectionState;
    if (st === 'connected' || st === 'completed') {
      if (!n.silent) this.recovered(peerId, n);
      return;
    }
    if (st !== 'disconnected' && st !== 'failed') return;
    if (!n.lostAt) {
      n.lostAt = performance.now();
      this.emit('lost', { peerId, state: st, at: Date.now() });
    }
    if (st === 'failed') {
      clearTimeout(n.timer);
      n.timer = null;
      this.restart(peerId, 'failed');
    } else if (!n.timer) {
      n.timer = setTimeout(() => {
        n.timer = null;
        if (pc.iceConnectionState === 'disconnected' || n.silent) this.restart(peerId, n.silent ? 'silent' : 'disconnected');
      }, silent ? 0 : this.restartGraceMs);
    }
  }

  // peerRestarted: peerId restarted ICE (its offer has a new ICE ufrag,
  // RFC 8839 §4.4.1.1.1). Outside a relay move, which both sides are
  // told of, the peer lost the connection — and so has this page, even
  // when it had not seen it yet: it says so, and counts the loss as silent
  // until media arrives again (the bytes it has by now are the baseline).
  // A restart this page is about to make itself is left to the peer's.
  async peerRestarted(peerId, pc, n) {
    clearTimeout(n.timer);
    n.timer = null;
    if (performance.now() < this.movingUntil || n.lostAt) return;
    n.lostAt = performance.now();
    n.silent = true;
    this.emit('lost', { peerId, state: 'restarted', at: Date.now() });
    this.emit('restarting', { peerId, why: 'peer' });
    try {
      const st = await callStats(pc);
      n.rxBytes = st.transportBytesReceived;
    } catch (_) { /* closed meanwhile */ }
  }

  // recovered ends a loss of the connection with peerId.
  recovered(peerId, n) {
    clearTimeout(n.timer);
    n.timer = null;
    clearTimeout(n.retryTimer);
    n.retryTimer = null;
    n.retries = 0;
    if (!n.lostAt) return;
    const ms = Math.round(performance.now() - n.lostAt);
    n.lostAt = 0;
    console.info(`call: connection to ${peerId} recovered in ${ms} ms`);
    this.emit('recovered', { peerId, ms, at: Date.now() });
  }

  // needsRestart: the connection with a peer is not up, or a negotiation
  // with it is unfinished (its other half may have been lost with the
  // signaling socket), or a restart waits for signaling.
  needsRestart(pc, n) {
    const ice = pc.iceConnectionState;
    return n.pendingRestart || pc.signalingState !== 'stable' || (ice !== 'connected' && ice !== 'completed');
  }

  /** Restart ICE with peerId, with fresh relay credentials. */
  async restart(peerId, why = 'requested') {
    const pc = this.pcs.get(peerId);
    const n = this.nego.get(peerId);
    if (!pc || this.closed) return;
    this.emit('restarting', { peerId, why });
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      n.pendingRestart = true; // done on the next welcome
      return;
    }
    n.pendingRestart = false;
    await this.freshIce();
    if (this.pcs.get(peerId) !== pc) return;
    // An offer that got no answer (sent as signaling was lost) is taken
    // back first.
    if (pc.signalingState === 'have-local-offer') {
      try { await pc.setLocalDescription({ type: 'rollback' }); } catch (_) { /* answered meanwhile */ }
    }
    pc.restartIce(); // negotiationneeded sends the offer
    this.retryLater(peerId, pc, n);
  }

  // retryLater restarts again if this restart has not brought the
  // connection with peerId up by its time (RESTART_RETRY_*).
  retryLater(peerId, pc, n) {
    clearTimeout(n.retryTimer);
    const ms = Math.min(RESTART_RETRY_FIRST_MS * 2 ** (n.retries || 0), RESTART_RETRY_MAX_MS);
    n.retries = (n.retries || 0) + 1;
    n.retryTimer = setTimeout(() => {
      n.retryTimer = null;
      if (this.closed || this.pcs.get(peerId) !== pc) return;
      if (this.needsRestart(pc, n)) this.restart(peerId, 'retry');
      else n.retries = 0;
    }, ms * (1 + Math.random() / 4));
  }

  async updateCode(peerId, pc) {
    const st = await callStats(pc);
    const local = st.localFingerprint || sdpFingerprint(pc.localDescription && pc.localDescription.sdp);
    const remote = st.remoteFingerprint || sdpFingerprint(pc.remoteDescription && pc.remoteDescription.sdp);
    if (!local || !remote) return;
    const code = await securityCode(local, remote);
    if (this.pcs.get(peerId) !== pc) return; // gone meanwhile: nothing stale
    const before = this.codes.get(peerId);
    if (before !== code) {
      this.codes.set(peerId, code);
      this.emit('code', { peerId, code, changed: before !== undefined });
    }
  }

  async pollStats() {
    for (const [peerId, pc] of this.pcs) {
      try {
        const stats = await callStats(pc);
        if (this.closed || this.pcs.get(peerId) !== pc) continue; // hung up meanwhile: nothing stale
        this.watchSilence(peerId, pc, stats);
        this.emit('stats', { peerId, stats });
        if (pc.connectionState === 'connected' && !this.codes.has(peerId)) this.updateCode(peerId, pc);
      } catch (_) { /* closed meanwhile */ }
    }
  }

  // A peer that says it sends sound or video (even muted or turned off,
  // which still sends packets) sends something many times a second: a
  // connected transport that received nothing for the grace is lost.
  watchSilence(peerId, pc, stats) {
    const n = this.nego.get(peerId);
    const pm = this.peerMedia.get(peerId);
    if (!n) return;
    const now = performance.now();
    const ice = pc.iceConnectionState;
    if (stats.transportBytesReceived !== n.rxBytes) {
      n.rxBytes = stats.transportBytesReceived;
      n.rxAt = now;
      if (n.silent && (ice === 'connected' || ice === 'completed')) {
        n.silent = false;
        this.recovered(peerId, n);
      }
      return;
    }
    const sends = pm && (['on', 'off'].includes(pm.audio) || ['on', 'off'].includes(pm.video));
    if (sends && !n.silent && n.rxAt && (ice === 'connected' || ice === 'completed') && now - n.rxAt >= this.restartGraceMs) {
      n.silent = true;
      this.watchIce(peerId, pc, n, true);
    }
  }

  // The chat and file channel with peerId: negotiated (both sides make
  // it, id 0), so it needs no ondatachannel and rides the first offer.
  openChannel(pc, peerId) {
    const dc = pc.createDataChannel('telegate', { negotiated: true, id: 0, ordered: true });
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = DC_HIGH_WATER / 4;
    dc.onmessage = ev => this.onChannel(peerId, ev.data);
    dc.onopen = () => {
      if (this.screenStream) this.sendTo(dc, { t: 'screen', on: true, stream: this.screenStream.id });
    };
    this.dcs.set(peerId, dc);
  }

  sendTo(dc, m) {
    if (dc && dc.readyState === 'open') dc.send(JSON.stringify(m));
  }

  // One message on the channel from peerId; anything out of bounds is
  // dropped (a file that breaks them is refused as a whole).
  onChannel(peerId, data) {
    const n = this.nego.get(peerId);
    if (!n) return;
    if (data instanceof ArrayBuffer) {
      const f = n.incoming;
      if (!f || f.failed) return;
      f.received += data.byteLength;
      if (f.received > f.size) {
        f.failed = true;
        this.emit('fileerror', { peerId, name: f.name, why: 'broken' });
        return;
      }
      f.parts.push(data);
      return;
    }
    if (typeof data !== 'string' || data.length > CHAT_MAX_CHARS * 6 + 1024) return;
    let m;
    try { m = JSON.parse(data); } catch (_) { return; }
    if (!m || typeof m !== 'object') return;
    switch (m.t) {
      case 'chat':
        if (typeof m.text === 'string' && m.text.length > 0 && m.text.length <= CHAT_MAX_CHARS) this.emit('chat', { peerId, text: m.text, at: Date.now() });
        break;
      case 'file': {
        const name = String(m.name || 'file').slice(0, FILE_NAME_MAX_CHARS);
        const size = Number(m.size);
        if (!Number.isSafeInteger(size) || size < 0 || size > FILE_MAX_BYTES) {
          n.incoming = { name, size: 0, received: 0, parts: [], failed: true };
          this.emit('fileerror', { peerId, name, why: 'too-big' });
          break;
        }
        n.incoming = { name, size, type: typeof m.type === 'string' ? m.type.slice(0, 100) : '', received: 0, parts: [], failed: false };
        break;
      }
      case 'file-end': {
        const f = n.incoming;
        n.incoming = null;
        if (!f || f.failed) break;
        if (f.received !== f.size) {
          this.emit('fileerror', { peerId, name: f.name, why: 'broken' });
          break;
        }
        const blob = new Blob(f.parts, { type: f.type || 'application/octet-stream' });
        this.emit('file', { peerId, name: f.name, size: f.size, type: blob.type, blob });
        break;
      }
      case 'screen':
        if (m.on && typeof m.stream === 'string') {
          n.screenId = m.stream;
          const s = n.streams.get(m.stream);
          if (s) this.emit('screen', { peerId, stream: s });
        } else if (!m.on) {
          if (n.screenId) n.streams.delete(n.screenId);
          n.screenId = null;
          this.emit('screen', { peerId, stream: null });
        }
        break;
      default: break;
    }
  }

  /** Send a chat message to everyone in the call. text: 1 … CHAT_MAX_CHARS characters; throws RangeError otherwise. Returns how many peers it went to. */
  sendChat(text) {
    text = String(text);
    if (!text.length || text.length > CHAT_MAX_CHARS) throw new RangeError('chat message length');
    let sent = 0;
    for (const dc of this.dcs.values()) {
      if (dc.readyState === 'open') { this.sendTo(dc, { t: 'chat', text }); sent++; }
    }
    return sent;
  }

  /**
   * Send a file (a File or Blob, at most FILE_MAX_BYTES; RangeError
   * otherwise) to everyone in the call, in FILE_CHUNK_BYTES messages,
   * waiting while a channel's queue is full. Resolves with how many peers
   * it went to.
   */
  async sendFile(file) {
    if (file.size > FILE_MAX_BYTES) throw new RangeError('file too big');
    const open = [...this.dcs.values()].filter(dc => dc.readyState === 'open');
    const head = { t: 'file', name: String(file.name || 'file').slice(0, FILE_NAME_MAX_CHARS), size: file.size, type: file.type || '' };
    for (const dc of open) this.sendTo(dc, head);
    for (let off = 0; off < file.size; off += FILE_CHUNK_BYTES) {
      const chunk = await file.slice(off, off + FILE_CHUNK_BYTES).arrayBuffer();
      for (const dc of open) {
        if (dc.readyState !== 'open') continue;
        if (dc.bufferedAmount > DC_HIGH_WATER) {
          await new Promise(r => { dc.addEventListener('bufferedamountlow', r, { once: true }); dc.addEventListener('close', r, { once: true }); });
        }
        if (dc.readyState === 'open') dc.send(chunk);
      }
    }
    for (const dc of open) this.sendTo(dc, { t: 'file-end' });
    return open.filter(dc => dc.readyState === 'open').length;
  }

  /**
   * Share the screen (getDisplayMedia; must follow a user gesture) with
   * everyone in the call, as a second video track on each connection.
   * Stopping it in the browser's own bar ends the share too.
   */
  async startScreenShare() {
    if (this.screenStream || this.closed) return;
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    if (this.closed) { for (const t of stream.getTracks()) t.stop(); return; }
    this.screenStream = stream;
    const [track] = stream.getVideoTracks();
    track.addEventListener('ended', () => this.stopScreenShare());
    for (const [pid, pc] of this.pcs) {
      const n = this.nego.get(pid);
      this.sendTo(this.dcs.get(pid), { t: 'screen', on: true, stream: stream.id });
      if (n.tracksAdded) n.screenSender = pc.addTrack(track, stream); // negotiationneeded sends the offer
    }
    this.emit('sharing', { on: true });
  }

  /** End this page's screen share. */
  stopScreenShare() {
    const stream = this.screenStream;
    if (!stream) return;
    this.screenStream = null;
    for (const t of stream.getTracks()) t.stop();
    for (const [pid, pc] of this.pcs) {
      const n = this.nego.get(pid);
      const dc = this.dcs.get(pid);
      if (dc) this.sendTo(dc, { t: 'screen', on: false });
      if (n.screenSender) {
        try { pc.removeTrack(n.screenSender); } catch (_) { /* closed meanwhile */ }
        n.screenSender = null;
      }
    }
    this.emit('sharing', { on: false });
  }

  dropPeer(peerId) {
    const pc = this.pcs.get(peerId);
    if (pc) {
      // Anything still on its way from the peer's end of it is late.
      const sess = pc.remoteDescription && sdpSession(pc.remoteDescription.sdp);
      if (sess) {
        const stale = (this.staleSessions.get(peerId) || []).filter(s => s !== sess);
        stale.push(sess);
        this.staleSessions.set(peerId, stale.slice(-STALE_SESSIONS_MAX));
      }
      pc.close();
    }
    const n = this.nego.get(peerId);
    if (n) { clearTimeout(n.timer); clearTimeout(n.retryTimer); clearTimeout(n.answerTimer); }
    if (n && n.screenId) this.emit('screen', { peerId, stream: null }); // that page's share went with it
    this.pcs.delete(peerId);
    this.nego.delete(peerId);
    this.codes.delete(peerId);
    this.dcs.delete(peerId);
  }

  /** Mute or unmute the microphone. */
  setMuted(muted) {
    if (this.localStream) for (const t of this.localStream.getAudioTracks()) t.enabled = !muted;
    if (this.media.audio === 'on' || this.media.audio === 'off') this.setMedia({ audio: muted ? 'off' : 'on' });
  }
  /** Turn the camera off or on. */
  setCamera(on) {
    if (this.localStream) for (const t of this.localStream.getVideoTracks()) t.enabled = !!on;
    if (this.media.video === 'on' || this.media.video === 'off') this.setMedia({ video: on ? 'on' : 'off' });
  }

  /** Leave the call (others see the peer leave; the visit goes on). */
  hangUp() { this.send({ type: 'bye' }); this.stop('hangup'); }

  stop(why, code, reason) {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.statsTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.iceTimer);
    this.stopScreenShare();
    for (const id of [...this.pcs.keys()]) this.dropPeer(id);
    if (this.ws) { try { this.ws.close(1000); } catch (_) { /* already closed */ } }
    if (this.localStream) for (const t of this.localStream.getTracks()) t.stop();
    this.emit('closed', { why, code, reason });
  }
}

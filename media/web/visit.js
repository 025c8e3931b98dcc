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
/** One visit as the caller may see it. */
export function getVisit(id) { return api('GET', `${BASE}/${encodeURIComponent(id)}`); }
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
  const out = { localCandidateType: '', remoteCandidateType: '', rtt: null, inboundVideoBytes: 0, inboundAudioBytes: 0,
    packetsLost: 0, framesPerSecond: null, frameWidth: null, localFingerprint: null, remoteFingerprint: null };
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
    const lc = byId.get(transport.localCertificateId);
    const rc = byId.get(transport.remoteCertificateId);
    if (lc) out.localFingerprint = `${lc.fingerprintAlgorithm} ${lc.fingerprint}`;
    if (rc) out.remoteFingerprint = `${rc.fingerprintAlgorithm} ${rc.fingerprint}`;
  }
  report.forEach(s => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video') {
      out.inboundVideoBytes += s.bytesReceived || 0;
      out.framesPerSecond = s.framesPerSecond ?? out.framesPerSecond;
      out.frameWidth = s.frameWidth ?? out.frameWidth;
    } else if (s.kind === 'audio') {
      out.inboundAudioBytes += s.bytesReceived || 0;
    }
    out.packetsLost += s.packetsLost || 0;
  });
  return out;
}

/**
 * A call in one visit: one RTCPeerConnection per other participant, relay
 * only, one DTLS certificate for the whole page (so the fingerprint the
 * server sees never changes without an ICE restart).
 *
 * Events (CustomEvent .detail):
 *   welcome {self, peers}, peer {peer} (joined), remotestream {peerId, stream},
 *   state {peerId, state} (RTCPeerConnectionState), code {peerId, code},
 *   stats {peerId, stats} (every second), peerleft {peerId},
 *   iceerror {peerId, code, text, url} (a TURN server error while gathering),
 *   reconnecting {code, reason} (the node is restarting; the call rejoins by itself),
 *   closed {code, reason, why: 'ended'|'removed'|'signed-out'|'replaced'|'refused'|'hangup'|'network'}.
 */
export class Call extends EventTarget {
  constructor(visitId, opts = {}) {
    super();
    this.visitId = visitId;
    this.localStream = opts.localStream || null;
    this.pcs = new Map();      // peer id → RTCPeerConnection
    this.pending = new Map();  // peer id → queued candidates
    this.peers = new Map();    // peer id → {id, name, role}
    this.codes = new Map();
    this.self = null;
    this.ws = null;
    this.closed = false;
    this.statsTimer = null;
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  /** Fetch ICE servers, make the certificate, open the signaling socket. */
  async start() {
    this.ice = await iceConfig(this.visitId);
    this.certificate = await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });
    this.connect();
    this.statsTimer = setInterval(() => this.pollStats(), 1000);
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}${BASE}/${encodeURIComponent(this.visitId)}/signal`);
    this.ws = ws;
    ws.onmessage = ev => {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      this.onSignal(m).catch(err => console.warn('signaling:', m.type, err.name));
    };
    ws.onclose = ev => {
      if (this.ws !== ws || this.closed) return;
      const why = { 4004: 'ended', 4003: 'removed', 4005: 'signed-out', 4009: 'replaced', 4001: 'refused', 1008: 'refused' }[ev.code];
      if (why) {
        this.stop(why, ev.code, ev.reason);
        return;
      }
      // 1001: the node is restarting (the reason says so); the visit goes
      // on. Otherwise network trouble. Either way rejoin; the peer
      // connections keep their media meanwhile.
      if (ev.code === 1001) this.emit('reconnecting', { code: ev.code, reason: ev.reason });
      setTimeout(() => { if (!this.closed) this.reconnect(); }, 2000);
    };
    this.pingTimer = this.pingTimer || setInterval(() => this.send({ type: 'ping' }), 25000);
  }

  /** Fetch fresh relay credentials (the node may have changed), then reopen the socket. */
  async reconnect() {
    try { this.ice = await iceConfig(this.visitId); } catch (_) { /* keep the last ones */ }
    if (!this.closed) this.connect();
  }

  send(m) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  async onSignal(m) {
    switch (m.type) {
      case 'welcome':
        this.self = m.self;
        for (const p of m.peers || []) {
          this.peers.set(p.id, p);
          await this.offer(p.id);
        }
        this.emit('welcome', { self: m.self, peers: m.peers || [] });
        break;
      case 'peer-joined':
        this.peers.set(m.peer.id, m.peer);
        this.emit('peer', { peer: m.peer });
        break;
      case 'peer-left':
        this.dropPeer(m.id);
        this.emit('peerleft', { peerId: m.id });
        break;
      case 'offer': {
        this.dropPeer(m.from);
        const pc = this.makePC(m.from);
        await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
        await this.flush(m.from);
        await pc.setLocalDescription(await pc.createAnswer());
        this.send({ type: 'answer', to: m.from, sdp: pc.localDescription.sdp });
        break;
      }
      case 'answer': {
        const pc = this.pcs.get(m.from);
        if (pc && pc.signalingState === 'have-local-offer') {
          await pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
          await this.flush(m.from);
        }
        break;
      }
      case 'candidate': {
        const pc = this.pcs.get(m.from);
        if (pc && pc.remoteDescription) {
          await pc.addIceCandidate(m.candidate);
        } else {
          const q = this.pending.get(m.from) || [];
          if (q.length < 100) q.push(m.candidate);
          this.pending.set(m.from, q);
        }
        break;
      }
      case 'ended': this.stop('ended'); break;
      case 'removed': this.stop('removed'); break;
      default: break;
    }
  }

  async flush(peerId) {
    const pc = this.pcs.get(peerId);
    const q = this.pending.get(peerId) || [];
    this.pending.delete(peerId);
    for (const c of q) await pc.addIceCandidate(c);
  }

  makePC(peerId) {
    const pc = new RTCPeerConnection({
      iceServers: this.ice.iceServers,
      iceTransportPolicy: 'relay',
      bundlePolicy: 'max-bundle',
      certificates: [this.certificate],
    });
    this.pcs.set(peerId, pc);
    if (this.localStream) {
      for (const t of this.localStream.getTracks()) pc.addTrack(t, this.localStream);
    }
    pc.onicecandidate = e => {
      if (e.candidate && e.candidate.candidate) this.send({ type: 'candidate', to: peerId, candidate: e.candidate.toJSON() });
    };
    pc.onicecandidateerror = e => {
      console.warn('ICE candidate error', e.errorCode, e.errorText, e.url);
      this.emit('iceerror', { peerId, code: e.errorCode, text: e.errorText, url: e.url });
    };
    pc.ontrack = e => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      this.emit('remotestream', { peerId, stream });
    };
    pc.onconnectionstatechange = () => {
      this.emit('state', { peerId, state: pc.connectionState });
      if (pc.connectionState === 'connected') this.updateCode(peerId, pc);
      if (pc.connectionState === 'failed' && this.self && this.self < peerId) this.offer(peerId, true);
    };
    return pc;
  }

  async offer(peerId, restart = false) {
    let pc = this.pcs.get(peerId);
    if (!pc || !restart) {
      this.dropPeer(peerId, true);
      pc = this.makePC(peerId);
    }
    await pc.setLocalDescription(await pc.createOffer({ iceRestart: restart }));
    this.send({ type: 'offer', to: peerId, sdp: pc.localDescription.sdp });
  }

  async updateCode(peerId, pc) {
    const st = await callStats(pc);
    const local = st.localFingerprint || sdpFingerprint(pc.localDescription && pc.localDescription.sdp);
    const remote = st.remoteFingerprint || sdpFingerprint(pc.remoteDescription && pc.remoteDescription.sdp);
    if (!local || !remote) return;
    const code = await securityCode(local, remote);
    if (this.codes.get(peerId) !== code) {
      this.codes.set(peerId, code);
      this.emit('code', { peerId, code });
    }
  }

  async pollStats() {
    for (const [peerId, pc] of this.pcs) {
      try {
        const stats = await callStats(pc);
        this.emit('stats', { peerId, stats });
        if (pc.connectionState === 'connected' && !this.codes.has(peerId)) this.updateCode(peerId, pc);
      } catch (_) { /* closed meanwhile */ }
    }
  }

  dropPeer(peerId, keepInfo) {
    const pc = this.pcs.get(peerId);
    if (pc) pc.close();
    this.pcs.delete(peerId);
    this.pending.delete(peerId);
    this.codes.delete(peerId);
    if (!keepInfo && !this.pcs.has(peerId)) { /* peer info kept for names */ }
  }

  /** Mute or unmute the microphone. */
  setMuted(muted) {
    if (this.localStream) for (const t of this.localStream.getAudioTracks()) t.enabled = !muted;
  }
  /** Turn the camera off or on. */
  setCamera(on) {
    if (this.localStream) for (const t of this.localStream.getVideoTracks()) t.enabled = !!on;
  }

  /** Leave the call (others see the peer leave; the visit goes on). */
  hangUp() { this.send({ type: 'bye' }); this.stop('hangup'); }

  stop(why, code, reason) {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.statsTimer);
    clearInterval(this.pingTimer);
    for (const id of [...this.pcs.keys()]) this.dropPeer(id);
    if (this.ws) { try { this.ws.close(1000); } catch (_) { /* already closed */ } }
    if (this.localStream) for (const t of this.localStream.getTracks()) t.stop();
    this.emit('closed', { why, code, reason });
  }
}

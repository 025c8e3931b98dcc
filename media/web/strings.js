// The words telegate's visit pages show people, in one catalogue (ready
// for translation: add a language as another object with the same keys).
// Pages never show an API's own error text: errorText maps an error — a
// VisitError's reason, a getUserMedia DOMException's name, a failed fetch —
// to plain words that say what happened and what to do.

export const catalogue = {
  en: {
    // Lobby
    'lobby.creating': 'Creating…',
    'lobby.created': 'Visit created. Send the invite link to the patient.',
    'lobby.copied': 'Invite link copied.',
    'lobby.copyByHand': 'Select the link and copy it.',
    'lobby.newInvite': 'New invite link made. The earlier link no longer works.',
    'lobby.ended': 'Visit ended.',
    'lobby.waitingCount': '{title} · {n} waiting',
    'lobby.scheduled': 'Scheduled {time} · ',
    'lobby.endsBy': 'Ends by {time}',
    'lobby.notStarted': 'Not started',
    'lobby.validUntil': 'Valid until {time}',
    'lobby.nobodyWaiting': 'Nobody is waiting.',
    'lobby.admit': 'Admit',
    'lobby.decline': 'Decline',
    'lobby.remove': 'Remove',
    'lobby.admitName': 'Admit {name}',
    'lobby.declineName': 'Decline {name}',
    'lobby.removeName': 'Remove {name}',
    'lobby.away': 'away — left the waiting room',
    'lobby.waitingFor': 'waiting {min} min',
    'lobby.signedOutTitle': 'You were signed out',
    'lobby.signedOutText': 'This page was left unused, so you were signed out to protect patient information. Visits stay open.',
    'lobby.signInAgain': 'Sign in again',
    // Alerts when someone arrives
    'alert.title': '({n}) waiting · {title}',
    'alert.caption': 'Chime: {name} arrived in the waiting room.',
    'alert.notificationTitle': 'Someone is waiting',
    'alert.notificationBody': 'A patient is waiting for your video visit.',
    'alert.enable': 'Turn on desktop alerts',
    // Waiting room
    'wait.inRoom': 'You are in the waiting room. The clinician will let you in shortly.',
    'wait.admitted': 'You have been admitted. Joining…',
    'wait.linkIncomplete': 'This link is incomplete. Open the invite link you received, exactly as it was sent.',
    // Call
    'call.checking': 'Checking your place in the visit…',
    'call.starting': 'Starting camera…',
    'call.notAdmitted': 'You have not been let into this call yet. Go back to the waiting room and keep it open; the clinician will let you in.',
    'call.backToWaiting': 'Back to the waiting room',
    'call.waitingForOther': 'Waiting for the other participant…',
    'call.connecting': 'Connecting…',
    'call.connected': 'Connected.',
    'call.reconnecting': 'Reconnecting…',
    'call.nodeRestarting': 'The video service is restarting; rejoining the call…',
    'call.restarting': 'The connection dropped. Reconnecting…',
    'call.recovered': 'Reconnected.',
    'call.noPath': 'Cannot reach the other person. Your network may block video calls: try another network (for example mobile data instead of Wi-Fi), then press Rejoin.',
    'call.otherLeft': 'The other participant left. Waiting…',
    'call.codeChanged': 'The security code changed. Read it aloud again before going on.',
    'call.ended': 'The visit has ended.',
    'call.removed': 'You were removed from the visit.',
    'call.signedOut': 'You were signed out. Sign in again to rejoin.',
    'call.replaced': 'This visit was opened in another window or on another device. Rejoin here to move the call back.',
    'call.refused': 'The connection was refused for safety. Press Rejoin to try again.',
    'call.hungUp': 'You left the call. The visit goes on: press Rejoin to go back in.',
    'call.closed': 'The call was closed. Press Rejoin to try again.',
    'call.rejoin': 'Rejoin',
    'call.mute': 'Mute',
    'call.unmute': 'Unmute',
    'call.cameraOff': 'Camera off',
    'call.cameraOn': 'Camera on',
    'call.endVisit': 'End visit',
    'call.endConfirm': 'The visit ends for everyone.',
    'call.visitEnded': 'You ended the visit.',
    'call.lobbyTitle': 'Waiting room',
    // Chat, files and screen share in the call
    'chat.you': 'You',
    'chat.line': '{name}: {text}',
    'chat.notSent': 'Not sent: nobody else is connected yet.',
    'chat.tooLong': 'That message is too long. Send at most {n} characters at a time.',
    'chat.fileTooBig': 'That file is too big. Files of up to 8 MB can be sent.',
    'chat.fileSending': 'Sending {name}…',
    'chat.fileSent': 'Sent {name}.',
    'chat.file': 'File:',
    'chat.fileSize': '{name} ({size} KB)',
    'chat.fileRefused': 'A file from {name} was refused: it is bigger than 8 MB.',
    'chat.fileBroken': 'A file from {name} did not arrive complete. Ask them to send it again.',
    'screen.share': 'Share screen',
    'screen.stop': 'Stop sharing',
    'screen.self': 'You are sharing your screen.',
    'screen.remote': '{name} is sharing their screen.',
    'screen.failed': 'Screen sharing did not start. If your browser asked, allow sharing and try again.',
    'screen.label': "{name}'s screen",
    'call.startFailed': 'The call could not start. Check your internet connection and press Rejoin.',
    // Connection state, in plain words (RTCPeerConnectionState)
    'state.new': 'Starting',
    'state.connecting': 'Connecting',
    'state.connected': 'Connected',
    'state.disconnected': 'Reconnecting',
    'state.failed': 'Reconnecting',
    'state.closed': 'Call ended',
    'state.waiting': 'Waiting for the other person',
    // Quality
    'quality.none': '–',
    'quality.good': 'Good',
    'quality.fair': 'Fair: the picture may freeze now and then',
    'quality.poor': 'Poor: the picture may freeze. Moving closer to your Wi-Fi can help.',
    'quality.noVideo': 'No picture from {name}: their camera is {why}. You can still hear each other if their microphone works.',
    // Your own camera and microphone
    'media.blocked': 'Your camera and microphone are blocked in this browser, so the others cannot see or hear you. Allow them (the camera icon in the address bar), then press Rejoin.',
    'media.cameraBlocked': 'Your camera is blocked in this browser, so the others cannot see you; they can hear you. Allow it (the camera icon in the address bar), then press Rejoin.',
    'media.micBlocked': 'Your microphone is blocked in this browser, so the others cannot hear you. Allow it (the camera icon in the address bar), then press Rejoin.',
    'media.absent': 'No camera or microphone was found, so the others cannot see or hear you. You can still see and hear them. Connect one, then press Rejoin.',
    'media.cameraAbsent': 'No camera was found, so the others cannot see you; they can hear you. Connect a camera, then press Rejoin.',
    'media.micAbsent': 'No microphone was found, so the others cannot hear you. Connect one, then press Rejoin.',
    'media.inUse': 'Your camera or microphone is in use by another program. Close it, then press Rejoin.',
    // What a peer's camera is (quality.noVideo {why})
    'why.off': 'turned off',
    'why.blocked': 'blocked in their browser',
    'why.absent': 'not available',
    'name.other': 'the other person',
    // Page text (the HTML pages' data-t keys)
    'html.lobby.title1': 'Video visits · telegate',
    'html.lobby.h12': 'Video visits',
    'html.lobby.enable-alerts': 'Turn on desktop alerts',
    'html.lobby.create-heading': 'New visit',
    'html.lobby.span3': 'Title',
    'html.lobby.span4': '(seen only by clinicians)',
    'html.lobby.label5': 'Scheduled (optional)',
    'html.lobby.span6': 'People in the call',
    'html.lobby.span7': '(you included)',
    'html.lobby.create-visit': 'Create visit',
    'html.lobby.label8': 'Patient invite link',
    'html.lobby.copy-invite': 'Copy',
    'html.lobby.waiting-heading': 'Waiting room',
    'html.lobby.in-call-heading': 'Admitted',
    'html.lobby.span9': 'Join the call',
    'html.lobby.span10': '(opens a new tab; this list stays here)',
    'html.lobby.new-invite': 'New invite link',
    'html.lobby.end-visit': 'End visit',
    'html.lobby.list-heading': 'Open visits',
    'html.join.title1': 'Waiting room · telegate',
    'html.join.h12': 'Video visit',
    'html.join.waiting-heading': 'Waiting room',
    'html.join.waiting-status': 'Joining…',
    'html.join.p3': 'Keep this page open. You will join the call as soon as the clinician lets you in. Your browser will ask to use your camera and microphone.',
    'html.call.title1': 'Video visit · telegate',
    'html.call.back-to-waiting': 'Back to the waiting room',
    'html.call.dt2': 'Connection',
    'html.call.connection-state': 'Starting',
    'html.call.dt3': 'Quality',
    'html.call.quality': '–',
    'html.call.dt4': 'Security code',
    'html.call.security-code': '––– –––',
    'html.call.code-help': 'Read the security code aloud. If the other person sees the same digits, nobody is listening in between.',
    'html.call.host-waiting-heading': 'Waiting room',
    'html.call.end-visit': 'End visit',
    'html.call.mute': 'Mute',
    'html.call.camera': 'Camera off',
    'html.call.hangup': 'Hang up',
    'html.call.rejoin': 'Rejoin',
    'html.call.screen-self': 'You are sharing your screen.',
    'html.call.share-screen': 'Share screen',
    'html.call.chat-heading': 'Chat',
    'html.call.chat-help': 'Messages and files go straight to the others in the call, encrypted, and are not kept.',
    'html.call.chat-label': 'Message',
    'html.call.chat-send': 'Send',
    'html.call.chat-file': 'Send a file (up to 8 MB)',
    // Errors by reason (the visits API's "reason", see media/*.go)
    'error.unauthenticated': 'You are not signed in. Sign in again and reopen the link.',
    'error.csrf': 'This page is out of date. Reload it and try again.',
    'error.content-type': 'This page is out of date. Reload it and try again.',
    'error.bad-json': 'This page is out of date. Reload it and try again.',
    'error.body-too-large': 'That is too long. Shorten it and try again.',
    'error.owner': 'A visit needs a clinician to own it.',
    'error.role': 'Only clinicians can start visits. To join one, open the invite link your clinician sent you.',
    'error.participants': 'Choose between 2 and the largest number of people this clinic allows, you included.',
    'error.max-visits': 'Too many visits are open at the moment. End one and try again.',
    'error.max-visits-per-owner': 'You have too many open visits. End one and try again.',
    'error.closed': 'Video visits are restarting. Try again in a minute.',
    'error.restarting': 'Video visits are restarting. Try again in a minute.',
    'error.store': 'The visit could not be saved. Try again in a moment.',
    'error.relay': 'The call cannot reach its video relay right now. Wait a moment; it will try again by itself.',
    'error.internal': 'Something went wrong on our side. Try again in a moment.',
    'error.unknown-visit': 'This visit no longer exists. Ask your clinician for a new invite link.',
    'error.not-participant': 'This visit is not yours. Open the invite link you were sent, signed in as yourself.',
    'error.not-owner': 'Only the clinician who created this visit can do that.',
    'error.invite-malformed': 'This invite link is incomplete or damaged. Open the link exactly as your clinician sent it, or ask for a new one.',
    'error.invite-signature': 'This invite link is not valid. Ask your clinician to send you a new one.',
    'error.invite-expired': 'This invite link has expired. Ask your clinician to send you a new one.',
    'error.invite-replaced': 'This invite link was replaced by a newer one. Use the link your clinician sent last, or ask for a new one.',
    'error.ended': 'This visit has ended. If you still need to see your clinician, ask them for a new invite link.',
    'error.declined': 'The clinician declined your request to join this visit. If you think that is a mistake, contact the clinic.',
    'error.removed': 'You were removed from this visit. If you think that is a mistake, contact the clinic.',
    'error.left': 'You left the waiting room. Open the invite link again to go back in.',
    'error.full': 'This visit is full: it already has everyone it was set up for (the clinician counts as one). Ask the clinician for help.',
    'error.waiting-room-full': 'The waiting room is full. Try again in a few minutes.',
    'error.unknown-participant': 'That person is no longer in the visit. The list will update by itself.',
    'error.not-waiting': 'That person is no longer waiting. The list will update by itself.',
    'error.host': 'The clinician cannot be removed. End the visit instead.',
    'error.not-present': 'That person is no longer in the visit.',
    'error.unknown-action': 'This page is out of date. Reload it and try again.',
    'error.not-admitted': 'You have not been let into this call yet. Go back to the waiting room and keep it open.',
    'error.origin': 'This page is out of date. Reload it and try again.',
    'error.max-peers': 'Too many calls are running at the moment. Try again in a minute.',
    'error.network': 'Cannot reach the clinic. Check your internet connection and try again.',
    'error.generic': 'Something went wrong. Try again in a moment; if it keeps happening, contact the clinic.',
  },
};

let lang = 'en';

/** Choose the language of the pages (a catalogue key); unknown ones keep English. */
export function setLanguage(l) { if (catalogue[l]) lang = l; }

/** The text of key with {name} placeholders filled from vars. */
export function t(key, vars = {}) {
  const s = (catalogue[lang] && catalogue[lang][key]) ?? catalogue.en[key];
  if (s === undefined) return catalogue.en['error.generic'];
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

/**
 * Plain words for err: a visits API error (by its reason, or its HTTP
 * status), a failed request (no network), or anything else.
 */
export function errorText(err) {
  if (err && err.reason && catalogue.en['error.' + err.reason] !== undefined) return t('error.' + err.reason);
  if (err && err.status === 401) return t('error.unauthenticated');
  if (err && err.status >= 500) return t('error.internal');
  if (err instanceof TypeError) return t('error.network'); // fetch failed
  return t('error.generic');
}

/**
 * Plain words for why the camera or microphone could not start, from
 * getUserMedia's DOMException name and what was asked for.
 */
export function mediaText(audio, video) {
  if (audio === 'blocked' && video === 'blocked') return t('media.blocked');
  if (video === 'blocked') return t('media.cameraBlocked');
  if (audio === 'blocked') return t('media.micBlocked');
  if (audio === 'absent' && video === 'absent') return t('media.absent');
  if (video === 'absent') return t('media.cameraAbsent');
  if (audio === 'absent') return t('media.micAbsent');
  return '';
}

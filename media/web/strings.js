// The words telegate's visit pages show people, in one catalogue: one
// object per language (English, Spanish), each with every key (media's
// TestRegression_CatalogueLanguagesHaveEveryKey holds them to that). To add
// a language, add an object with the same keys and name it in
// languageNames.
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
    'call.left': '{name} left the call.',
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
    'chat.notSent': 'Not sent: nobody else is connected yet.',
    'chat.tooLong': 'That message is too long. Send at most {n} characters at a time.',
    'chat.fileTooBig': 'That file is too big. Files of up to 8 MB can be sent.',
    'chat.fileSending': 'Sending {name}…',
    'chat.fileSent': 'Sent {name}.',
    'chat.file': 'File:',
    'chat.fileSize': '{name} ({size} KB)',
    'chat.fileRefused': 'A file from {name} was refused: it is bigger than 8 MB.',
    'chat.fileBroken': 'A file from {name} did not arrive complete. Ask them to send it again.',

    // Pre-call check (waiting room)
    'check.intro': 'While you wait, check that your camera, microphone, speaker and connection work.',
    'check.running': 'Checking your connection…',
    'check.good': 'Your connection is good. You are ready for the call.',
    'check.fair': 'Your connection will work, but the picture may be less sharp. If you can, move closer to your Wi-Fi router and pause other downloads.',
    'check.poor': 'Your connection is weak: the call may freeze or break up. Move closer to your Wi-Fi router, pause other downloads, or try another network such as mobile data.',
    'check.failed': 'We could not reach the video service from this network. Try another network (for example mobile data instead of Wi-Fi), or call the clinic.',
    'check.busy': 'A check is already running. Try again in a few seconds.',
    'check.figures': 'Delay {ms} ms · lost {loss} % · speed about {kbps} kbit/s',
    'check.soundCaption': 'Test sound playing: three rising beeps. If you do not hear them, turn up the volume or choose another speaker.',
    'check.soundDone': 'Test sound finished.',
    'check.noCamera': 'No camera picture. Check that no other program uses the camera, or choose another one.',
    'check.device.videoinput': 'Camera {n}',
    'check.device.audioinput': 'Microphone {n}',
    'check.device.audiooutput': 'Speaker {n}',
    'check.previewLabel': 'Your camera preview',
    // Waiting-room chat
    'wchat.you': 'You',
    'wchat.clinic': 'Clinic',
    'wchat.notSent': 'Not sent: the chat is not connected. It reconnects by itself.',
    'wchat.closed': 'The waiting-room chat has closed.',
    'wchat.nobody': 'Nobody is waiting to write to.',
    'wchat.to': 'To {name}: {text}',
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
    'lang.label': 'Language',
    // Page text (the HTML pages' data-t keys)
    'html.lobby.title1': 'Video visits · telegate',
    'html.lobby.h12': 'Video visits',
    'html.lobby.enable-alerts': 'Turn on desktop alerts',
    'html.lobby.create-heading': 'New visit',
    'html.lobby.span3': 'Title',
    'html.lobby.span4': '(seen only by clinicians)',
    'html.lobby.label5': 'Scheduled (optional)',
    'html.lobby.span6': 'People in the call',
    'html.lobby.span7': '(you and any guests included)',
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

    'html.waiting.precall-heading': 'Check before the call',
    'html.waiting.precall-start': 'Check my camera, sound and connection',
    'html.waiting.precall-camera-label': 'Camera',
    'html.waiting.precall-mic-label': 'Microphone',
    'html.waiting.precall-speaker-label': 'Speaker',
    'html.waiting.precall-level-label': 'Microphone level (speak to see it move)',
    'html.waiting.precall-sound': 'Play a test sound',
    'html.waiting.precall-network': 'Check my connection again',
    'html.waiting.wchat-heading': 'Message the clinic',
    'html.waiting.wchat-help': 'Messages go only to the clinic staff of this visit and are not kept.',
    'html.waiting.wchat-label': 'Message',
    'html.waiting.wchat-send': 'Send',
    'html.lobby.wchat-heading': 'Messages with the waiting room',
    'html.lobby.wchat-help': 'Messages go only to the person chosen and are not kept.',
    'html.lobby.wchat-to-label': 'To',
    'html.lobby.wchat-label': 'Message',
    'html.lobby.wchat-send': 'Send',
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
    'html.call.remote-screen': 'Shared screen',
    'html.call.remote-video': "Other participant's video",
    'html.call.local-video': 'Your video',
    'html.call.panel': 'Call status',
    'html.call.controls': 'Call controls',
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
    'error.full': 'This visit is full: it already has everyone it was set up for (the clinician and any guests count too). Ask the clinician for help.',
    'error.waiting-room-full': 'The waiting room is full. Try again in a few minutes.',
    'error.unknown-participant': 'That person is no longer in the visit. The list will update by itself.',
    'error.not-waiting': 'That person is no longer waiting. The list will update by itself.',
    'error.host': 'The clinician cannot be removed. End the visit instead.',
    'error.not-present': 'That person is no longer in the visit.',
    'error.unknown-action': 'This page is out of date. Reload it and try again.',
    'error.not-admitted': 'You have not been let into this call yet. Go back to the waiting room and keep it open.',
    'error.rate': 'That was too often. Wait a few seconds and try again.',
    'error.capacity': 'This service is busy right now. Try again in a minute.',
    'error.origin': 'This page is out of date. Reload it and try again.',
    'error.max-peers': 'Too many calls are running at the moment. Try again in a minute.',
    'error.relay': 'The video service cannot be reached right now. Try again in a minute.',
    'error.network': 'Cannot reach the clinic. Check your internet connection and try again.',
    'error.generic': 'Something went wrong. Try again in a moment; if it keeps happening, contact the clinic.',
    // Guests
    'label.host': 'Clinician (host)',
    'label.patient': 'Patient',
    'label.interpreter': 'Interpreter',
    'label.family': 'Family member',
    'label.clinician': 'Clinician',
    'label.other': 'Guest',
    'guest.checking': 'Checking the guest link…',
    'guest.invitedAs': 'You are invited to a video visit as: {label}.',
    'guest.invitedAsName': 'You are invited to a video visit as {name} ({label}).',
    'guest.signInOnly': 'Sign in to join. The clinician lets you in from the waiting room.',
    'guest.signInOr': 'Sign in, or join without an account. The clinician lets you in from the waiting room.',
    'guestInvite.heading': 'Invite a guest',
    'guestInvite.help': 'An interpreter, a family member or a second clinician. Each guest link lets one person into this visit, for a short time.',
    'guestInvite.role': 'Guest is',
    'guestInvite.name': 'Name (optional)',
    'guestInvite.make': 'Make guest link',
    'guestInvite.link': 'Guest link',
    'guestInvite.copy': 'Copy guest link',
    'guestInvite.made': 'Guest link made for: {label}. It lets one person in, until {time}.',
    'guestInvite.copied': 'Guest link copied.',
    'roster.you': 'You',
    'roster.youAre': '{name} (you)',
    'roster.codeWith': 'Security code with {name}',
    'roster.noCode': 'not yet',
    'roster.remove': 'Remove {name} from the call',
    'roster.removed': '{name} was removed from the call.',
    'html.guest.title1': 'Guest · telegate',
    'html.guest.h12': 'Video visit',
    'html.guest.heading': 'Join as a guest',
    'html.guest.sign-in': 'Sign in to join',
    'html.guest.name-label': 'Your name',
    'html.guest.join': 'Join without an account',
    'html.guest.hint': 'The clinician sees the name you type before letting you in. Without an account you can take part in this visit only.',
    'html.guest.keep': 'Keep this page open. You will join the call as soon as the clinician lets you in. Your browser will ask to use your camera and microphone.',
    'html.call.roster-heading': 'In the call',
    'html.call.roster-help': 'Each person has a security code with you. Read it aloud with that person: the same digits on both sides mean nobody is listening in between.',
    'error.guest-link-used': 'This guest link has already been used. Each guest link lets one person in; ask the clinician for a new one.',
    'error.guest-link-expired': 'This guest link has expired. Ask the clinician for a new one.',
    'error.guest-link-invalid': 'This guest link is not valid. Ask the clinician for a new one.',
    'error.guest-link-malformed': 'This guest link is incomplete or damaged. Open the link exactly as you received it, or ask for a new one.',
    'error.guest-label': 'Choose who the guest is: interpreter, family member, clinician or other guest.',
    'error.guest-links-full': 'This visit has as many unused guest links as it may have. Wait until one is used or expires.',
  },
  es: {
    // Sala de espera del clínico (lobby)
    'lobby.creating': 'Creando…',
    'lobby.created': 'Consulta creada. Envíe el enlace de invitación al paciente.',
    'lobby.copied': 'Enlace de invitación copiado.',
    'lobby.copyByHand': 'Seleccione el enlace y cópielo.',
    'lobby.newInvite': 'Se creó un enlace de invitación nuevo. El enlace anterior ya no funciona.',
    'lobby.ended': 'Consulta finalizada.',
    'lobby.waitingCount': '{title} · {n} en espera',
    'lobby.scheduled': 'Programada {time} · ',
    'lobby.endsBy': 'Termina a más tardar {time}',
    'lobby.notStarted': 'Sin empezar',
    'lobby.validUntil': 'Válido hasta {time}',
    'lobby.nobodyWaiting': 'No hay nadie en espera.',
    'lobby.admit': 'Admitir',
    'lobby.decline': 'Rechazar',
    'lobby.remove': 'Retirar',
    'lobby.admitName': 'Admitir a {name}',
    'lobby.declineName': 'Rechazar a {name}',
    'lobby.removeName': 'Retirar a {name}',
    'lobby.away': 'ausente: salió de la sala de espera',
    'lobby.waitingFor': 'esperando {min} min',
    'lobby.signedOutTitle': 'Se cerró su sesión',
    'lobby.signedOutText': 'Esta página estuvo sin uso, así que se cerró su sesión para proteger la información de los pacientes. Las consultas siguen abiertas.',
    'lobby.signInAgain': 'Iniciar sesión de nuevo',
    // Avisos cuando llega alguien
    'alert.title': '({n}) en espera · {title}',
    'alert.caption': 'Aviso sonoro: {name} llegó a la sala de espera.',
    'alert.notificationTitle': 'Hay alguien esperando',
    'alert.notificationBody': 'Un paciente espera su consulta por video.',
    'alert.enable': 'Activar avisos en el escritorio',
    // Sala de espera
    'wait.inRoom': 'Está en la sala de espera. El clínico le dejará pasar en breve.',
    'wait.admitted': 'Ya puede pasar. Entrando…',
    'wait.linkIncomplete': 'Este enlace está incompleto. Abra el enlace de invitación que recibió, tal como se lo enviaron.',
    // Llamada
    'call.checking': 'Comprobando su lugar en la consulta…',
    'call.starting': 'Encendiendo la cámara…',
    'call.notAdmitted': 'Todavía no le han dejado pasar a esta llamada. Vuelva a la sala de espera y manténgala abierta; el clínico le dejará pasar.',
    'call.backToWaiting': 'Volver a la sala de espera',
    'call.waitingForOther': 'Esperando al otro participante…',
    'call.connecting': 'Conectando…',
    'call.connected': 'Conectado.',
    'call.reconnecting': 'Reconectando…',
    'call.nodeRestarting': 'El servicio de video se está reiniciando; volviendo a entrar en la llamada…',
    'call.restarting': 'Se cortó la conexión. Reconectando…',
    'call.recovered': 'Conexión recuperada.',
    'call.noPath': 'No se puede llegar a la otra persona. Puede que su red bloquee las videollamadas: pruebe otra red (por ejemplo, datos móviles en lugar de wifi) y pulse Volver a entrar.',
    'call.otherLeft': 'El otro participante salió. Esperando…',
    'call.left': '{name} salió de la llamada.',
    'call.codeChanged': 'El código de seguridad cambió. Léalo en voz alta otra vez antes de seguir.',
    'call.ended': 'La consulta ha terminado.',
    'call.removed': 'Le retiraron de la consulta.',
    'call.signedOut': 'Se cerró su sesión. Inicie sesión de nuevo para volver a entrar.',
    'call.replaced': 'Esta consulta se abrió en otra ventana o en otro dispositivo. Pulse Volver a entrar aquí para traer la llamada a esta pantalla.',
    'call.refused': 'La conexión se rechazó por seguridad. Pulse Volver a entrar para intentarlo de nuevo.',
    'call.hungUp': 'Salió de la llamada. La consulta continúa: pulse Volver a entrar para regresar.',
    'call.closed': 'La llamada se cerró. Pulse Volver a entrar para intentarlo de nuevo.',
    'call.rejoin': 'Volver a entrar',
    'call.mute': 'Silenciar',
    'call.unmute': 'Activar micrófono',
    'call.cameraOff': 'Apagar cámara',
    'call.cameraOn': 'Encender cámara',
    'call.endVisit': 'Finalizar consulta',
    'call.endConfirm': 'La consulta termina para todos.',
    'call.visitEnded': 'Usted finalizó la consulta.',
    'call.lobbyTitle': 'Sala de espera',
    'call.startFailed': 'No se pudo iniciar la llamada. Compruebe su conexión a internet y pulse Volver a entrar.',
    // Estado de la conexión, en palabras sencillas
    'state.new': 'Iniciando',
    'state.connecting': 'Conectando',
    'state.connected': 'Conectado',
    'state.disconnected': 'Reconectando',
    'state.failed': 'Reconectando',
    'state.closed': 'Llamada terminada',
    'state.waiting': 'Esperando a la otra persona',
    // Calidad
    'quality.none': '–',
    'quality.good': 'Buena',
    'quality.fair': 'Regular: la imagen puede congelarse a ratos',
    'quality.poor': 'Mala: la imagen puede congelarse. Acercarse al router wifi puede ayudar.',
    'quality.noVideo': 'No hay imagen de {name}: su cámara está {why}. Aun así pueden oírse si su micrófono funciona.',
    // Su cámara y micrófono
    'media.blocked': 'La cámara y el micrófono están bloqueados en este navegador, así que los demás no pueden verle ni oírle. Permítalos (el icono de la cámara en la barra de direcciones) y pulse Volver a entrar.',
    'media.cameraBlocked': 'La cámara está bloqueada en este navegador, así que los demás no pueden verle; sí pueden oírle. Permítala (el icono de la cámara en la barra de direcciones) y pulse Volver a entrar.',
    'media.micBlocked': 'El micrófono está bloqueado en este navegador, así que los demás no pueden oírle. Permítalo (el icono de la cámara en la barra de direcciones) y pulse Volver a entrar.',
    'media.absent': 'No se encontró ninguna cámara ni micrófono, así que los demás no pueden verle ni oírle. Usted sí puede verles y oírles. Conecte uno y pulse Volver a entrar.',
    'media.cameraAbsent': 'No se encontró ninguna cámara, así que los demás no pueden verle; sí pueden oírle. Conecte una cámara y pulse Volver a entrar.',
    'media.micAbsent': 'No se encontró ningún micrófono, así que los demás no pueden oírle. Conecte uno y pulse Volver a entrar.',
    'media.inUse': 'Otro programa está usando la cámara o el micrófono. Ciérrelo y pulse Volver a entrar.',
    // Cómo está la cámara del otro (quality.noVideo {why})
    'why.off': 'apagada',
    'why.blocked': 'bloqueada en su navegador',
    'why.absent': 'no disponible',
    'name.other': 'la otra persona',
    'lang.label': 'Idioma',
    // Texto de las páginas (claves data-t)
    'html.lobby.title1': 'Consultas por video · telegate',
    'html.lobby.h12': 'Consultas por video',
    'html.lobby.enable-alerts': 'Activar avisos en el escritorio',
    'html.lobby.create-heading': 'Nueva consulta',
    'html.lobby.span3': 'Título',
    'html.lobby.span4': '(solo lo ven los clínicos)',
    'html.lobby.label5': 'Programada (opcional)',
    'html.lobby.span6': 'Personas en la llamada',
    'html.lobby.span7': '(usted y los invitados incluidos)',
    'html.lobby.create-visit': 'Crear consulta',
    'html.lobby.label8': 'Enlace de invitación para el paciente',
    'html.lobby.copy-invite': 'Copiar',
    'html.lobby.waiting-heading': 'Sala de espera',
    'html.lobby.in-call-heading': 'Admitidos',
    'html.lobby.span9': 'Entrar en la llamada',
    'html.lobby.span10': '(se abre en una pestaña nueva; esta lista sigue aquí)',
    'html.lobby.new-invite': 'Nuevo enlace de invitación',
    'html.lobby.end-visit': 'Finalizar consulta',
    'html.lobby.list-heading': 'Consultas abiertas',
    'html.join.title1': 'Sala de espera · telegate',
    'html.join.h12': 'Consulta por video',
    'html.join.waiting-heading': 'Sala de espera',
    'html.join.waiting-status': 'Entrando…',
    'html.join.p3': 'Mantenga esta página abierta. Entrará en la llamada en cuanto el clínico le deje pasar. Su navegador le pedirá permiso para usar la cámara y el micrófono.',

    'html.waiting.precall-heading': 'Compruebe antes de la consulta',
    'html.waiting.precall-start': 'Comprobar mi cámara, sonido y conexión',
    'html.waiting.precall-camera-label': 'Cámara',
    'html.waiting.precall-mic-label': 'Micrófono',
    'html.waiting.precall-speaker-label': 'Altavoz',
    'html.waiting.precall-level-label': 'Nivel del micrófono (hable para verlo moverse)',
    'html.waiting.precall-sound': 'Reproducir un sonido de prueba',
    'html.waiting.precall-network': 'Comprobar mi conexión otra vez',
    'html.waiting.wchat-heading': 'Escribir a la clínica',
    'html.waiting.wchat-help': 'Los mensajes solo llegan al personal de la clínica de esta consulta y no se guardan.',
    'html.waiting.wchat-label': 'Mensaje',
    'html.waiting.wchat-send': 'Enviar',
    'html.lobby.wchat-heading': 'Mensajes con la sala de espera',
    'html.lobby.wchat-help': 'Los mensajes solo llegan a la persona elegida y no se guardan.',
    'html.lobby.wchat-to-label': 'Para',
    'html.lobby.wchat-label': 'Mensaje',
    'html.lobby.wchat-send': 'Enviar',
    'html.call.title1': 'Consulta por video · telegate',
    'html.call.back-to-waiting': 'Volver a la sala de espera',
    'html.call.dt2': 'Conexión',
    'html.call.connection-state': 'Iniciando',
    'html.call.dt3': 'Calidad',
    'html.call.quality': '–',
    'html.call.dt4': 'Código de seguridad',
    'html.call.security-code': '––– –––',
    'html.call.code-help': 'Lea el código de seguridad en voz alta. Si la otra persona ve los mismos dígitos, nadie está escuchando en medio.',
    'html.call.host-waiting-heading': 'Sala de espera',
    'html.call.end-visit': 'Finalizar consulta',
    'html.call.mute': 'Silenciar',
    'html.call.camera': 'Apagar cámara',
    'html.call.hangup': 'Colgar',
    'html.call.rejoin': 'Volver a entrar',
    'html.call.screen-self': 'Está compartiendo su pantalla.',
    'html.call.share-screen': 'Compartir pantalla',
    'html.call.chat-heading': 'Chat',
    'html.call.chat-help': 'Los mensajes y archivos van directamente a las demás personas de la llamada, cifrados, y no se guardan.',
    'html.call.chat-label': 'Mensaje',
    'html.call.chat-send': 'Enviar',
    'html.call.chat-file': 'Enviar un archivo (hasta 8 MB)',
    'html.call.remote-screen': 'Pantalla compartida',
    'chat.you': 'Usted',
    'chat.notSent': 'No se envió: todavía no hay nadie más conectado.',
    'chat.tooLong': 'Ese mensaje es demasiado largo. Envíe como máximo {n} caracteres cada vez.',
    'chat.fileTooBig': 'Ese archivo es demasiado grande. Se pueden enviar archivos de hasta 8 MB.',
    'chat.fileSending': 'Enviando {name}…',
    'chat.fileSent': 'Se envió {name}.',
    'chat.file': 'Archivo:',
    'chat.fileSize': '{name} ({size} KB)',
    'chat.fileRefused': 'Se rechazó un archivo de {name}: pesa más de 8 MB.',
    'chat.fileBroken': 'Un archivo de {name} no llegó completo. Pídale que lo envíe de nuevo.',

    // Pre-call check (waiting room)
    'check.intro': 'Mientras espera, compruebe que su cámara, micrófono, altavoz y conexión funcionan.',
    'check.running': 'Comprobando su conexión…',
    'check.good': 'Su conexión es buena. Está listo para la consulta.',
    'check.fair': 'Su conexión funcionará, pero la imagen puede verse menos nítida. Si puede, acérquese al router wifi y pause otras descargas.',
    'check.poor': 'Su conexión es débil: la llamada puede congelarse o cortarse. Acérquese al router wifi, pause otras descargas o pruebe otra red, como los datos móviles.',
    'check.failed': 'No pudimos llegar al servicio de video desde esta red. Pruebe otra red (por ejemplo, datos móviles en lugar de wifi) o llame a la clínica.',
    'check.busy': 'Ya hay una comprobación en marcha. Inténtelo de nuevo en unos segundos.',
    'check.figures': 'Retraso {ms} ms · perdido {loss} % · velocidad aproximada {kbps} kbit/s',
    'check.soundCaption': 'Sonido de prueba: tres pitidos ascendentes. Si no los oye, suba el volumen o elija otro altavoz.',
    'check.soundDone': 'Terminó el sonido de prueba.',
    'check.noCamera': 'No hay imagen de la cámara. Compruebe que ningún otro programa la esté usando o elija otra.',
    'check.device.videoinput': 'Cámara {n}',
    'check.device.audioinput': 'Micrófono {n}',
    'check.device.audiooutput': 'Altavoz {n}',
    'check.previewLabel': 'Vista previa de su cámara',
    // Waiting-room chat
    'wchat.you': 'Usted',
    'wchat.clinic': 'Clínica',
    'wchat.notSent': 'No se envió: el chat no está conectado. Se reconecta solo.',
    'wchat.closed': 'El chat de la sala de espera se ha cerrado.',
    'wchat.nobody': 'No hay nadie esperando a quien escribir.',
    'wchat.to': 'Para {name}: {text}',
    'screen.share': 'Compartir pantalla',
    'screen.stop': 'Dejar de compartir',
    'screen.self': 'Está compartiendo su pantalla.',
    'screen.remote': '{name} está compartiendo su pantalla.',
    'screen.failed': 'No se pudo compartir la pantalla. Si el navegador lo pidió, permita compartir e inténtelo de nuevo.',
    'screen.label': 'Pantalla de {name}',
    'html.call.remote-video': 'Video del otro participante',
    'html.call.local-video': 'Su video',
    'html.call.panel': 'Estado de la llamada',
    'html.call.controls': 'Controles de la llamada',
    // Errores por motivo (el "reason" de la API de consultas)
    'error.unauthenticated': 'No ha iniciado sesión. Inicie sesión de nuevo y vuelva a abrir el enlace.',
    'error.csrf': 'Esta página está desactualizada. Vuelva a cargarla e inténtelo de nuevo.',
    'error.content-type': 'Esta página está desactualizada. Vuelva a cargarla e inténtelo de nuevo.',
    'error.bad-json': 'Esta página está desactualizada. Vuelva a cargarla e inténtelo de nuevo.',
    'error.body-too-large': 'Es demasiado largo. Acórtelo e inténtelo de nuevo.',
    'error.owner': 'Una consulta necesita un clínico responsable.',
    'error.role': 'Solo los clínicos pueden iniciar consultas. Para entrar en una, abra el enlace de invitación que le envió su clínico.',
    'error.participants': 'Elija entre 2 y el número máximo de personas que permite esta clínica, usted incluido.',
    'error.max-visits': 'Hay demasiadas consultas abiertas en este momento. Finalice una e inténtelo de nuevo.',
    'error.max-visits-per-owner': 'Tiene demasiadas consultas abiertas. Finalice una e inténtelo de nuevo.',
    'error.closed': 'Las consultas por video se están reiniciando. Inténtelo de nuevo en un minuto.',
    'error.restarting': 'Las consultas por video se están reiniciando. Inténtelo de nuevo en un minuto.',
    'error.store': 'No se pudo guardar la consulta. Inténtelo de nuevo en un momento.',
    'error.internal': 'Algo falló por nuestra parte. Inténtelo de nuevo en un momento.',
    'error.unknown-visit': 'Esta consulta ya no existe. Pida a su clínico un enlace de invitación nuevo.',
    'error.not-participant': 'Esta consulta no es suya. Abra el enlace de invitación que le enviaron, con su propia cuenta.',
    'error.not-owner': 'Solo el clínico que creó esta consulta puede hacer eso.',
    'error.invite-malformed': 'Este enlace de invitación está incompleto o dañado. Ábralo tal como se lo envió su clínico, o pida uno nuevo.',
    'error.invite-signature': 'Este enlace de invitación no es válido. Pida a su clínico que le envíe uno nuevo.',
    'error.invite-expired': 'Este enlace de invitación ha caducado. Pida a su clínico que le envíe uno nuevo.',
    'error.invite-replaced': 'Este enlace de invitación se sustituyó por uno más reciente. Use el último enlace que le envió su clínico, o pida uno nuevo.',
    'error.ended': 'Esta consulta ha terminado. Si todavía necesita ver a su clínico, pídale un enlace de invitación nuevo.',
    'error.declined': 'El clínico rechazó su solicitud para entrar en esta consulta. Si cree que es un error, comuníquese con la clínica.',
    'error.removed': 'Le retiraron de esta consulta. Si cree que es un error, comuníquese con la clínica.',
    'error.left': 'Salió de la sala de espera. Abra de nuevo el enlace de invitación para volver.',
    'error.full': 'Esta consulta está completa: ya tiene a todas las personas previstas (el clínico y los invitados también cuentan). Pida ayuda al clínico.',
    'error.waiting-room-full': 'La sala de espera está llena. Inténtelo de nuevo en unos minutos.',
    'error.unknown-participant': 'Esa persona ya no está en la consulta. La lista se actualizará sola.',
    'error.not-waiting': 'Esa persona ya no está esperando. La lista se actualizará sola.',
    'error.host': 'No se puede retirar al clínico. Finalice la consulta en su lugar.',
    'error.not-present': 'Esa persona ya no está en la consulta.',
    'error.unknown-action': 'Esta página está desactualizada. Vuelva a cargarla e inténtelo de nuevo.',
    'error.not-admitted': 'Todavía no le han dejado pasar a esta llamada. Vuelva a la sala de espera y manténgala abierta.',
    'error.rate': 'Fue demasiado seguido. Espere unos segundos e inténtelo de nuevo.',
    'error.capacity': 'El servicio está ocupado en este momento. Inténtelo de nuevo en un minuto.',
    'error.origin': 'Esta página está desactualizada. Vuelva a cargarla e inténtelo de nuevo.',
    'error.max-peers': 'Hay demasiadas llamadas en curso en este momento. Inténtelo de nuevo en un minuto.',
    'error.relay': 'No se puede conectar con el servicio de video en este momento. Inténtelo de nuevo en un minuto.',
    'error.network': 'No se puede conectar con la clínica. Compruebe su conexión a internet e inténtelo de nuevo.',
    'error.generic': 'Algo salió mal. Inténtelo de nuevo en un momento; si sigue pasando, comuníquese con la clínica.',
    // Guests
    'label.host': 'Clínico (anfitrión)',
    'label.patient': 'Paciente',
    'label.interpreter': 'Intérprete',
    'label.family': 'Familiar',
    'label.clinician': 'Clínico',
    'label.other': 'Invitado',
    'guest.checking': 'Comprobando el enlace de invitado…',
    'guest.invitedAs': 'Le invitan a una consulta por video como: {label}.',
    'guest.invitedAsName': 'Le invitan a una consulta por video como {name} ({label}).',
    'guest.signInOnly': 'Inicie sesión para entrar. El clínico le deja pasar desde la sala de espera.',
    'guest.signInOr': 'Inicie sesión, o entre sin cuenta. El clínico le deja pasar desde la sala de espera.',
    'guestInvite.heading': 'Invitar a un invitado',
    'guestInvite.help': 'Un intérprete, un familiar o un segundo clínico. Cada enlace de invitado deja entrar a una sola persona en esta consulta, por poco tiempo.',
    'guestInvite.role': 'El invitado es',
    'guestInvite.name': 'Nombre (opcional)',
    'guestInvite.make': 'Crear enlace de invitado',
    'guestInvite.link': 'Enlace de invitado',
    'guestInvite.copy': 'Copiar enlace de invitado',
    'guestInvite.made': 'Enlace de invitado creado para: {label}. Deja entrar a una persona, hasta {time}.',
    'guestInvite.copied': 'Enlace de invitado copiado.',
    'roster.you': 'Usted',
    'roster.youAre': '{name} (usted)',
    'roster.codeWith': 'Código de seguridad con {name}',
    'roster.noCode': 'todavía no',
    'roster.remove': 'Retirar a {name} de la llamada',
    'roster.removed': '{name} fue retirado de la llamada.',
    'html.guest.title1': 'Invitado · telegate',
    'html.guest.h12': 'Consulta por video',
    'html.guest.heading': 'Entrar como invitado',
    'html.guest.sign-in': 'Iniciar sesión para entrar',
    'html.guest.name-label': 'Su nombre',
    'html.guest.join': 'Entrar sin cuenta',
    'html.guest.hint': 'El clínico ve el nombre que escriba antes de dejarle pasar. Sin cuenta solo puede participar en esta consulta.',
    'html.guest.keep': 'Mantenga esta página abierta. Entrará en la llamada en cuanto el clínico le deje pasar. Su navegador le pedirá permiso para usar la cámara y el micrófono.',
    'html.call.roster-heading': 'En la llamada',
    'html.call.roster-help': 'Cada persona tiene un código de seguridad con usted. Léanlo en voz alta: si ambos ven los mismos dígitos, nadie está escuchando en medio.',
    'error.guest-link-used': 'Este enlace de invitado ya se usó. Cada enlace de invitado deja entrar a una sola persona; pida uno nuevo al clínico.',
    'error.guest-link-expired': 'Este enlace de invitado ha caducado. Pida uno nuevo al clínico.',
    'error.guest-link-invalid': 'Este enlace de invitado no es válido. Pida uno nuevo al clínico.',
    'error.guest-link-malformed': 'Este enlace de invitado está incompleto o dañado. Ábralo tal como lo recibió, o pida uno nuevo.',
    'error.guest-label': 'Elija quién es el invitado: intérprete, familiar, clínico u otro invitado.',
    'error.guest-links-full': 'Esta consulta ya tiene todos los enlaces de invitado sin usar que puede tener. Espere a que se use o caduque uno.',
  },
};

/** Each catalogue language named in itself, for the language switch. */
export const languageNames = { en: 'English', es: 'Español' };

/** The localStorage key under which a browser remembers the chosen language. */
export const languageStorageKey = 'telegate.lang';

let lang = 'en';

/** Choose the language of the pages (a catalogue key); unknown ones keep English. */
export function setLanguage(l) { if (catalogue[l]) lang = l; }

/** The language the pages speak now (a catalogue key such as 'es'). */
export function language() { return lang; }

/**
 * The catalogue language for a browser's preferred languages: tags is a
 * list of BCP 47 language tags, most preferred first (navigator.languages,
 * which the browser derives from its Accept-Language, RFC 9110 §12.5.4);
 * the first whose primary subtag (RFC 5646 §2.2.1) has a catalogue wins,
 * English when none has. saved, a language chosen earlier with the switch,
 * comes before them all when it has a catalogue.
 */
export function pickLanguage(tags, saved) {
  if (saved && catalogue[saved]) return saved;
  for (const tag of tags || []) {
    const primary = String(tag).toLowerCase().split('-')[0];
    if (catalogue[primary]) return primary;
  }
  return 'en';
}

/** The text of key with {name} placeholders filled from vars. */
export function t(key, vars = {}) {
  const s = (catalogue[lang] && catalogue[lang][key]) ?? catalogue.en[key];
  if (s === undefined) return catalogue.en['error.generic'];
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

const patterns = {};

/**
 * text, a string of language from's catalogue (its {placeholders} filled),
 * said in language to with the same filling; null when text is no
 * catalogue string of from. The language switch uses it to change words a
 * page already shows.
 */
export function retranslate(text, from, to) {
  const src = catalogue[from], dst = catalogue[to];
  if (!src || !dst || from === to) return null;
  // Of the templates that match, the one with the most words of its own
  // (a bare '{name}: {text}' matches nearly anything).
  let best = null, bestLen = -1;
  for (const [k, tpl] of Object.entries(src)) {
    if (!tpl.includes('{')) {
      if (tpl === text) return dst[k];
      continue;
    }
    const id = from + ' ' + k;
    if (!patterns[id]) {
      const names = [];
      const re = tpl.split(/\{(\w+)\}/).map((part, i) => {
        if (i % 2) { names.push(part); return '([\\s\\S]*?)'; }
        return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      }).join('');
      patterns[id] = { re: new RegExp('^' + re + '$'), names };
    }
    const m = patterns[id].re.exec(text);
    if (!m) continue;
    const own = tpl.replace(/\{\w+\}/g, '').length;
    if (own > bestLen) { best = [k, m]; bestLen = own; }
  }
  if (!best) return null;
  const [k, m] = best;
  // A filling may itself be catalogue words (quality.noVideo's {why}).
  const vars = Object.fromEntries(patterns[from + ' ' + k].names.map((n, i) => [n, retranslate(m[i + 1], from, to) ?? m[i + 1]]));
  return dst[k].replace(/\{(\w+)\}/g, (_, n) => vars[n] ?? '');
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

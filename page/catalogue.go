package page

// catalogue is telegate's server-side catalogue: the words of the pages
// its Go code writes (sign-in chooser, signing out, error pages, the
// break-glass offer), gettext-style. Each msgid is the English text as the
// code states it, once, at the call (page.Error, page.Problem, {{t "…"}}
// in a page.Parse template); this table holds its translation into every
// other language of Languages. The visit pages' words, written by the
// browser, are in the client's catalogue (media/web/strings.js); no
// string is in both. TestRegression_UntranslatedPageString finds every
// msgid in the code and fails on one without its translation;
// TestCatalogueHasNoStaleEntries on an entry no code uses.
var catalogue = map[string]map[string]string{
	"es": {
		// Layout and error pages
		"Signed in as %s":     "Sesión iniciada como %s",
		"your account":        "su cuenta",
		"Sign out":            "Cerrar sesión",
		"Switch account":      "Cambiar de cuenta",
		"Request id:":         "Identificador de la solicitud:",
		"Go to the home page": "Ir a la página de inicio",
		"Language":            "Idioma",

		"This language change did not come from this site.": "Este cambio de idioma no vino de este sitio.",
		"Use the language buttons on the page instead.":     "Use en su lugar los botones de idioma de la página.",
		"This language is not offered here.":                "Este idioma no se ofrece aquí.",
		"Choose one of the languages the page offers.":      "Elija uno de los idiomas que ofrece la página.",

		"Video visits are started by clinicians.":                        "Las visitas por video las inicia el personal clínico.",
		"To join a visit, open the invite link your clinician sent you.": "Para unirse a una visita, abra el enlace de invitación que le envió su profesional clínico.",

		"This request could not be read":         "No se pudo leer esta solicitud",
		"Please sign in":                         "Inicie sesión",
		"You cannot open this page":              "No puede abrir esta página",
		"Page not found":                         "Página no encontrada",
		"This action is not possible here":       "Esta acción no es posible aquí",
		"This could not be done now":             "No se pudo hacer ahora",
		"Too much was sent":                      "Se envió demasiado",
		"This address is not served here":        "Esta dirección no se sirve aquí",
		"Too many requests":                      "Demasiadas solicitudes",
		"Something went wrong":                   "Algo salió mal",
		"This could not be done":                 "No se pudo hacer",
		"The service cannot be reached":          "No se puede llegar al servicio",
		"The service is not available right now": "El servicio no está disponible en este momento",
		"The service did not answer in time":     "El servicio no respondió a tiempo",

		"The service could not answer this request.": "El servicio no pudo responder a esta solicitud.",
		"The request was refused.":                   "La solicitud fue rechazada.",
		"Something went wrong.":                      "Algo salió mal.",

		"Sign in, then open the page again.": "Inicie sesión y vuelva a abrir la página.",
		"If you need this page, ask your administrator for access and give them the request id below. If you are signed in with the wrong account, switch account.": "Si necesita esta página, pida acceso a su administrador y dele el identificador de la solicitud que aparece abajo. Si inició sesión con una cuenta que no es la correcta, cambie de cuenta.",
		"Check the address for typing mistakes, or go to the home page.":                                                                                            "Revise que la dirección esté bien escrita o vaya a la página de inicio.",
		"Wait a minute, then try again.":                    "Espere un minuto y vuelva a intentarlo.",
		"Send a smaller file or less text, then try again.": "Envíe un archivo más pequeño o menos texto y vuelva a intentarlo.",
		"Wait a minute, then try again. If it keeps happening, contact support and give them the request id below.":                  "Espere un minuto y vuelva a intentarlo. Si sigue ocurriendo, contacte con soporte y deles el identificador de la solicitud que aparece abajo.",
		"Go back, check what you entered, and try again. If it keeps happening, contact support and give them the request id below.": "Vuelva atrás, revise lo que escribió y vuelva a intentarlo. Si sigue ocurriendo, contacte con soporte y deles el identificador de la solicitud que aparece abajo.",

		// Sign-in and sign-out
		"Sign in":                      "Iniciar sesión",
		"Choose how to sign in:":       "Elija cómo iniciar sesión:",
		"Sign out of this site?":       "¿Cerrar la sesión en este sitio?",
		"Signing out":                  "Cerrando sesión",
		"You are signed out":           "Ha cerrado la sesión",
		"Continue":                     "Continuar",
		"Sign in with another account": "Iniciar sesión con otra cuenta",
		"You are signed out of this site. Your identity provider signs you out next.":                      "Ha cerrado la sesión en este sitio. A continuación, su proveedor de identidad cerrará también su sesión.",
		"You are signed out. To protect patient information, close this window if others use this device.": "Ha cerrado la sesión. Para proteger la información de los pacientes, cierre esta ventana si otras personas usan este dispositivo.",
		"No sign-in method is configured here.":                                                            "Aquí no hay ningún método de inicio de sesión configurado.",
		"Contact your administrator.":                                                                      "Contacte con su administrador.",
		"That sign-in method is not offered here.":                                                         "Ese método de inicio de sesión no se ofrece aquí.",
		"Go back and choose another.":                                                                      "Vuelva atrás y elija otro.",
		"Sign-in with %s is not available right now.":                                                      "El inicio de sesión con %s no está disponible en este momento.",
		"Try again in a minute.":                                                                           "Vuelva a intentarlo en un minuto.",
		"Try again in a moment.":                                                                           "Vuelva a intentarlo en un momento.",
		"The sign-in could not be completed.":                                                              "No se pudo completar el inicio de sesión.",
		"Go back to the page you wanted and sign in again.":                                                "Vuelva a la página que quería abrir e inicie sesión de nuevo.",
		"This sign-in method does not exist.":                                                              "Este método de inicio de sesión no existe.",
		"Signing in is not possible right now.":                                                            "No es posible iniciar sesión en este momento.",
		"Your identity provider sent a sign-in token larger than this site accepts.":                       "Su proveedor de identidad envió un token de inicio de sesión más grande de lo que este sitio acepta.",
		"Ask your administrator: the provider may be putting too many groups or claims into it.":           "Consulte a su administrador: puede que el proveedor incluya demasiados grupos o datos en él.",
		"Signing out did not finish.":                                                                      "El cierre de sesión no terminó.",
		"This sign-out request did not come from this site.":                                               "Esta solicitud de cierre de sesión no vino de este sitio.",
		"Use the sign-out button on the page instead.":                                                     "Use en su lugar el botón de cerrar sesión de la página.",
		"You need to sign in first.":                                                                       "Primero tiene que iniciar sesión.",
		"Open the page again to sign in.":                                                                  "Vuelva a abrir la página para iniciar sesión.",
		"Sign-in is required.":                                                                             "Es necesario iniciar sesión.",
		"This page does not accept the account you signed in with.":                                        "Esta página no acepta la cuenta con la que inició sesión.",
		"Sign out, then sign in with an account this page accepts.":                                        "Cierre la sesión e inicie sesión con una cuenta que esta página acepte.",
		"You are not allowed to open this page.":                                                           "No tiene permiso para abrir esta página.",
		"Your device certificate is not accepted here.":                                                    "El certificado de su dispositivo no se acepta aquí.",
		"Ask your administrator to enrol this device.":                                                     "Pida a su administrador que registre este dispositivo.",
		"This page needs a device certificate.":                                                            "Esta página necesita un certificado de dispositivo.",
		"Use an enrolled device.":                                                                          "Use un dispositivo registrado.",

		// Gateway
		"Not found.":                                      "No se encontró.",
		"Method not allowed.":                             "Método no permitido.",
		"The service is not available.":                   "El servicio no está disponible.",
		"The service did not answer in time.":             "El servicio no respondió a tiempo.",
		"telegate is restarting; send the request again.": "telegate se está reiniciando; envíe la solicitud de nuevo.",
		"The request names a method override (_method); send the method itself.": "La solicitud indica un cambio de método (_method); envíe el método directamente.",
		"The multipart request body cannot be read unambiguously.":               "El contenido de la solicitud (multipart) no se puede leer sin ambigüedad.",
		"The request body is too large.":                                         "El contenido de la solicitud es demasiado grande.",
		"The request body could not be read.":                                    "No se pudo leer el contenido de la solicitud.",
		"The request could not be recorded, so it was not served.":               "No se pudo registrar la solicitud, así que no se atendió.",
		"This port speaks HTTPS only: open the https:// address.":                "Este puerto solo usa HTTPS: abra la dirección https://.",
		"The request was blocked by the gateway's security inspection.":          "La inspección de seguridad de la pasarela bloqueó la solicitud.",
		"If this is an error, contact support with the request id.":              "Si es un error, contacte con soporte y deles el identificador de la solicitud.",
		"The request body is too large for this service.":                        "El contenido de la solicitud es demasiado grande para este servicio.",
		"The request could not be read.":                                         "No se pudo leer la solicitud.",
		"Check the form or file and try again.":                                  "Revise el formulario o el archivo y vuelva a intentarlo.",
		"The request could not be inspected.":                                    "No se pudo inspeccionar la solicitud.",

		// Emergency access (break-glass)
		"Choose one of the listed reasons.":                                    "Elija uno de los motivos de la lista.",
		"Contact the service desk.":                                            "Contacte con el servicio de asistencia.",
		"Emergency access cannot be recorded right now, so it is not granted.": "El acceso de emergencia no se puede registrar ahora, así que no se concede.",
		"Emergency access is not available for this page.":                     "El acceso de emergencia no está disponible para esta página.",
		"Emergency access is not available to you on this page.":               "El acceso de emergencia no está disponible para usted en esta página.",
		"Sign in with a second factor first.":                                  "Primero inicie sesión con un segundo factor.",
		"You hold the most emergency grants allowed at once.":                  "Ya tiene el máximo de accesos de emergencia permitidos a la vez.",
		"Wait for one to end.":                                                 "Espere a que termine uno.",
		"Reviewing emergency access needs a reviewer role.":                    "Revisar accesos de emergencia requiere el rol de revisor.",
		"The uses cannot be listed right now.":                                 "Los usos no se pueden mostrar ahora.",
		"Emergency access uses":                                                "Usos del acceso de emergencia",
		"The form could not be read.":                                          "No se pudo leer el formulario.",
	},
}

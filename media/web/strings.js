// The words telegate's visit pages show people come from telegate's one
// catalogue (page/catalogue.go), which the server serves beside this
// script as catalogue.js: catalogue, one object per language with every
// key, and languageNames, each language named in itself for the language
// switch. This module picks the language and fills in placeholders.
// Pages never show an API's own error text: errorText maps an error — a
// VisitError's reason, a getUserMedia DOMException's name, a failed fetch —
// to plain words that say what happened and what to do.

import { catalogue, languageNames } from './catalogue.js';

export { catalogue, languageNames };

/**
 * The localStorage key under which earlier versions remembered the
 * language chosen on this browser's visit pages. The choice now lives
 * with the server (the telegate_lang cookie, shared with telegate's own
 * pages), which serves every page in it (<html lang>); a choice found
 * here is carried over once.
 */
export const oldLanguageStorageKey = 'telegate.lang';

let lang = 'en';

/** Choose the language of the pages (a catalogue key); unknown ones keep English. */
export function setLanguage(l) { if (catalogue[l]) lang = l; }

/** The language the pages speak now (a catalogue key such as 'es'). */
export function language() { return lang; }

/**
 * Words: what t, concat and when give. They are said when they are turned
 * into text (String(w), textContent = w), in the language the pages
 * speak at that moment, from what they were made of: a catalogue key and
 * its fillings, each filling kept as it was given — a person's name or
 * typed text as it is, words as words, a moment (when) as a timestamp —
 * so the same words said again after a language switch are in the new
 * language, with dates in its locale, and nothing a person typed changes.
 * The pages remember the words each element shows and say them again on
 * a switch (app.js, applyLanguage).
 */
class Words {
  constructor(say) { this.say = say; }
  toString() { return this.say(); }
}

/**
 * The words of key with {name} placeholders filled from vars (any value:
 * a string, a number, Words); a key the catalogue lacks says the generic
 * error. Said in the language of the moment (Words).
 */
export function t(key, vars = {}) {
  return new Words(() => {
    const s = (catalogue[lang] && catalogue[lang][key]) ?? catalogue.en[key];
    if (s === undefined) return catalogue.en['error.generic'];
    return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
  });
}

/** parts (strings, Words, moments) said one after another, as Words. */
export function concat(...parts) {
  return new Words(() => parts.map(p => String(p ?? '')).join(''));
}

/**
 * The moment s (an RFC 3339 string, a Date or Unix ms) as a short date
 * and time in the locale of the language of the moment; '' for none.
 */
export function when(s) {
  if (!s) return '';
  const at = new Date(s).getTime();
  return new Words(() => new Date(at).toLocaleString(lang, { dateStyle: 'short', timeStyle: 'short' }));
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

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

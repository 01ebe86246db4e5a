import type { Context } from 'hono';
import { getCookie } from 'hono/cookie';
import { LANG_COOKIE } from '../access/console-session.js';
import { prefersEnglish } from '../api/messages.js';

/** The console's languages: Chinese (the default, as the API's) and English. */
export type Lang = 'zh' | 'en';

/** A page module's texts: the same keys in both languages. */
export type Texts<K extends string> = Record<Lang, Record<K, string>>;

/**
 * The language of a console request: `?lang=` when given, else the language cookie the switch
 * sets, else the API's Accept-Language rule (English when preferred, Chinese otherwise).
 */
export function langOf(c: Context): Lang {
  const asked = c.req.query('lang') ?? getCookie(c, LANG_COOKIE);
  if (asked === 'en' || asked === 'zh') return asked;
  return prefersEnglish(c.req.header('accept-language')) ? 'en' : 'zh';
}

/**
 * A lookup for one page module's texts: `t('key')`, with `{name}` placeholders filled from `vars`.
 * Keys are checked by the type system, so a text missing in one language fails the typecheck.
 */
export function translator<K extends string>(texts: Texts<K>, lang: Lang): (key: K, vars?: Record<string, string | number>) => string {
  return (key, vars) => {
    const text = texts[lang][key];
    return vars ? text.replace(/\{(\w+)\}/g, (m, name: string) => (name in vars ? String(vars[name]) : m)) : text;
  };
}

/** Bytes in binary units (GiB, MiB...), as the console shows memory and storage. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

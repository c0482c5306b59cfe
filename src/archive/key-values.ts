/**
 * The `key=value` line files of walship's local state: read-ahead records and spooled segments'
 * metadata. One pair a line, split at the first `=`, a key may repeat, and no value holds a
 * newline.
 */
export type KeyValues = readonly (readonly [string, string])[];

/** The file's text; throws when a value holds a newline or NUL (the line format cannot carry it). */
export function formatKeyValues(pairs: KeyValues): string {
  let out = '';
  for (const [k, v] of pairs) {
    if (/[\n\0]/.test(v)) throw new Error(`${k} holds a newline or NUL`);
    out += `${k}=${v}\n`;
  }
  return out;
}

/** Every value of each key, in file order. */
export function parseKeyValues(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const k = line.slice(0, eq);
    const list = out.get(k);
    if (list) list.push(line.slice(eq + 1));
    else out.set(k, [line.slice(eq + 1)]);
  }
  return out;
}

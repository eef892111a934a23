/**
 * Untrusted text (file names, labels from a pair manifest, error messages that carry them) made safe for
 * where it is written. No Node imports: the report webview's CSV export uses it too.
 */

/**
 * A CSV cell that a spreadsheet will not run as a formula: text starting with = + - @ or a tab / carriage
 * return gets a leading apostrophe (OWASP's advice for CSV injection). Numbers are written as they are.
 */
export function csvCell<T>(value: T): T | string {
  if (typeof value !== 'string') return value;
  return /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
}

/**
 * Text for a terminal: control characters (C0, DEL, C1 — escape sequences start with them) and the Unicode
 * bidirectional overrides are shown as \xNN / \u{NNNN} instead of being sent to the terminal, so a file name
 * or label cannot move the cursor, recolour or retitle the terminal, or reorder what is shown.
 */
export function terminalText(text: string, keepNewlines = false): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    if (keepNewlines && c === '\n') return c;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

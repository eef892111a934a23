/**
 * Markdown for hovers that show untrusted text (paths and labels from a dataset manifest, error messages that
 * quote file names). No `vscode` import: the hover passes its `vscode.MarkdownString`, whose `appendText`
 * escapes every Markdown token; this module adds what `appendText` does not do:
 * - control characters, line/paragraph separators and bidirectional controls are shown as escapes (`\n`,
 *   `\u202e`), so a multi-line path reads as one line of what it really holds;
 * - very long values are cut (a hover is no place for a 100 KB label);
 * - command links are built only for this extension's own hover commands (`HOVER_COMMANDS`, the hover's
 *   `isTrusted.enabledCommands`), their arguments percent-encoded so that no character ends the link early.
 */

/** The only commands a hover's Markdown may run (`isTrusted: { enabledCommands: HOVER_COMMANDS }`). */
export const HOVER_COMMANDS: readonly string[] = ['oodLens.manifest.inspect'];

/** What the hover needs of `vscode.MarkdownString` (structural: tests pass VS Code's own algorithm). */
export interface MarkdownSink {
  appendText(value: string): unknown;
  appendMarkdown(value: string): unknown;
}

/** Longest untrusted value shown in a hover (characters). */
export const MAX_HOVER_TEXT = 400;

// C0 and C1 controls, DEL, line/paragraph separators, bidi embeddings/overrides/isolates, marks, BOM.
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** `text` with invisible and line-breaking characters written as escapes, cut to `max` characters. */
export function visibleText(text: string, max = MAX_HOVER_TEXT): string {
  const shown = text.replace(INVISIBLE, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return shown.length > max ? `${shown.slice(0, max - 1)}…` : shown;
}

/** Appends untrusted text as plain text: nothing in it becomes Markdown, a link, an icon or a line break. */
export function appendPlain(md: MarkdownSink, text: string, max = MAX_HOVER_TEXT): void {
  md.appendText(visibleText(text, max));
}

/** `command:<id>?<args>` with the arguments JSON-encoded and every character that could end a Markdown link escaped. */
export function commandUri(command: string, args: unknown[]): string {
  if (!HOVER_COMMANDS.includes(command)) throw new Error(`${command} is not a hover command`);
  const encoded = encodeURIComponent(JSON.stringify(args)).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `command:${command}?${encoded}`;
}

/** A Markdown link to one of the hover commands; `title` and `tooltip` are the extension's own words. */
export function commandLink(title: string, command: string, args: unknown[], tooltip: string): string {
  if (/[[\]()"\\\n]/.test(tooltip)) throw new Error('a command link tooltip must be plain words');
  return `[${title}](${commandUri(command, args)} "${tooltip}")`;
}

/**
 * A thumbnail `![](uri|height=N)` for a file URI, or '' when the URI string holds anything but the characters
 * `vscode.Uri.toString()` leaves unencoded (it percent-encodes everything else).
 */
export function thumbnailMarkdown(fileUri: string, height: number): string {
  if (!/^file:\/\/[A-Za-z0-9%/._~:-]*$/.test(fileUri)) return '';
  return `![thumbnail](${fileUri}|height=${Math.round(height)})`;
}

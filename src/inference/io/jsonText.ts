/** JSON syntax errors in words that never quote the file (V8's messages repeat its first characters). */

/** "not valid JSON (line L, column C)" from a JSON.parse error, without any of the text itself. */
export function jsonSyntaxProblem(err: unknown, text: string): string {
  const message = err instanceof Error ? err.message : String(err);
  const lineColumn = /line (\d+) column (\d+)/.exec(message);
  if (lineColumn) return `not valid JSON (line ${lineColumn[1]}, column ${lineColumn[2]})`;
  const position = /at position (\d+)/.exec(message);
  if (position) {
    const offset = Number(position[1]);
    const before = text.slice(0, offset);
    const line = before.split('\n').length;
    return `not valid JSON (line ${line}, column ${offset - before.lastIndexOf('\n')})`;
  }
  if (/unexpected end/i.test(message)) return 'not valid JSON (it ends too early: truncated?)';
  return 'not valid JSON';
}

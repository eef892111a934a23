/** Small DOM helpers shared by the webview scripts. Text goes in through textContent only: file names and
 *  messages are never parsed as HTML. */

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A theme colour (a --vscode-* CSS variable) for canvas drawing, which cannot read CSS variables itself. */
export function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

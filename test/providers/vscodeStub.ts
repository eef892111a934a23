/**
 * Just enough of the `vscode` module to import provider modules in plain Node (their top level only declares
 * things): `MarkdownString` with VS Code's own escaping — `appendText` as in VS Code's
 * src/vs/base/common/htmlContent.ts (escapeMarkdownSyntaxTokens, escapeIcons, spaces → &nbsp;, `>` escaped,
 * newline → paragraph) — and `Uri.file`. Anything else is a placeholder that throws when used.
 */
import Module from 'node:module';

const ICONS = /(\\)?\$\([A-Za-z0-9-]+(?:~[A-Za-z]+)?\)/g;

export class MarkdownString {
  value: string;
  isTrusted?: boolean | { enabledCommands: readonly string[] };
  supportThemeIcons?: boolean;
  supportHtml?: boolean;

  constructor(value = '', supportThemeIcons = false) {
    this.value = value;
    this.supportThemeIcons = supportThemeIcons;
  }

  appendText(value: string): this {
    const icons = this.supportThemeIcons ? value.replace(ICONS, (match, escaped) => (escaped ? match : `\\${match}`)) : value;
    this.value += icons
      .replace(/[\\`*_{}[\]()#+\-!~]/g, '\\$&')
      .replace(/([ \t]+)/g, (_m, g1: string) => '&nbsp;'.repeat(g1.length))
      .replace(/>/gm, '\\>')
      .replace(/\n/g, '\n\n');
    return this;
  }

  appendMarkdown(value: string): this {
    this.value += value;
    return this;
  }
}

/** `vscode.Uri.file(p).toString()`: VS Code percent-encodes every character but a-z A-Z 0-9 - . _ ~ and `/`. */
export function fileUriString(path: string): string {
  const encoded = Array.from(Buffer.from(path, 'utf8'))
    .map((b) => (/[A-Za-z0-9\-._~/]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');
  return `file://${encoded}`;
}

function placeholder(name: string): unknown {
  return new Proxy(function () {}, {
    get: (_t, prop) => (prop === Symbol.toPrimitive ? () => name : placeholder(`${name}.${String(prop)}`)),
    apply: () => {
      throw new Error(`vscode stub: ${name}() is not available in unit tests`);
    },
    construct: () => {
      throw new Error(`vscode stub: new ${name}() is not available in unit tests`);
    },
  });
}

const stub = new Proxy({ MarkdownString, Uri: { file: (p: string) => ({ fsPath: p, toString: () => fileUriString(p) }) } } as Record<string, unknown>, {
  get: (target, prop: string) => (prop in target ? target[prop] : placeholder(`vscode.${prop}`)),
});

let installed = false;

/** Makes `require('vscode')` return the stub (call before importing a module that imports vscode). */
export function installVscodeStub(): void {
  if (installed) return;
  installed = true;
  const mod = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const load = mod._load;
  mod._load = function (request: string, ...rest: unknown[]) {
    if (request === 'vscode') return stub;
    return load.call(this, request, ...rest);
  };
}

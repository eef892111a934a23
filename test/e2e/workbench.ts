/**
 * code-server (VS Code's workbench with a real Node extension host) and the Playwright helpers that drive it
 * the way a user does: Explorer rows and their context menus, the command palette, Quick Open, Go to Line,
 * hovers, notifications and webview frames.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Frame, Page } from 'playwright-core';
import { cleanEnv, type E2eTools } from './setup';

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a truthy value; throws `what` with the last value seen after `timeout` ms. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeout = 30_000, every = 250): Promise<T> {
  const end = Date.now() + timeout;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err instanceof Error ? err.message.split('\n')[0] : err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${(timeout / 1000).toFixed(0)} s waiting for ${what}${last !== undefined && last !== false && last !== null ? ` (last: ${String(last).slice(0, 300)})` : ''}`);
    await sleep(every);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function codeServerEnv(tools: E2eTools, home: string): NodeJS.ProcessEnv {
  // XDG folders inside the run folder: code-server writes its config.yaml there, not into ~/.config.
  return cleanEnv({ PATH: `${tools.nodeBin}:${process.env.PATH}`, XDG_CONFIG_HOME: join(home, 'xdg-config'), XDG_DATA_HOME: join(home, 'xdg-data') });
}

/** Installs the VSIX into a fresh extensions folder. */
export function installVsix(tools: E2eTools, vsix: string, extensionsDir: string, userDataDir: string, home: string): void {
  mkdirSync(extensionsDir, { recursive: true });
  const r = spawnSync(tools.codeServer, ['--extensions-dir', extensionsDir, '--user-data-dir', userDataDir, '--install-extension', vsix], { env: codeServerEnv(tools, home), encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0 || !/successfully installed/i.test(out)) throw new Error(`code-server --install-extension ${vsix} failed (exit ${r.status}):\n${out.slice(-3000)}`);
}

export interface CodeServer {
  url: string;
  userDataDir: string;
  log: () => string;
  stop: () => Promise<void>;
}

/** User settings that keep the workbench quiet and deterministic. */
const USER_SETTINGS = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'extensions.autoUpdate': false,
  'extensions.autoCheckUpdates': false,
  'extensions.ignoreRecommendations': true,
  'update.mode': 'none',
  'telemetry.telemetryLevel': 'off',
  'git.enabled': false,
  'files.simpleDialog.enable': true,
  'editor.minimap.enabled': false,
  'window.restoreWindows': 'none',
  // Restricted Mode without the modal: an untrusted folder opens restricted.
  'security.workspace.trust.startupPrompt': 'never',
  'security.workspace.trust.banner': 'always',
  'chat.disableAIFeatures': true,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
};

export async function startCodeServer(tools: E2eTools, o: { workspace: string; extensionsDir: string; userDataDir: string; home: string; trust: boolean }): Promise<CodeServer> {
  mkdirSync(join(o.userDataDir, 'User'), { recursive: true });
  writeFileSync(join(o.userDataDir, 'User', 'settings.json'), JSON.stringify(USER_SETTINGS, null, 2));
  const port = await freePort();
  const args = ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--extensions-dir', o.extensionsDir, '--user-data-dir', o.userDataDir, '--disable-telemetry', '--disable-update-check', '--disable-getting-started-override'];
  if (o.trust) args.push('--disable-workspace-trust');
  args.push(o.workspace);
  const child: ChildProcess = spawn(tools.codeServer, args, { env: codeServerEnv(tools, o.home), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  let exited = false;
  child.on('exit', () => (exited = true));
  await until('code-server to listen', async () => {
    if (exited) throw new Error(`code-server exited:\n${log.slice(-2000)}`);
    return log.includes('HTTP server listening on');
  }, 90_000);
  return {
    url: `http://127.0.0.1:${port}/?folder=${encodeURIComponent(o.workspace)}`,
    userDataDir: o.userDataDir,
    log: () => log,
    stop: async () => {
      if (exited) return;
      try {
        process.kill(-child.pid!, 'SIGTERM'); // its own process group: code-server and its extension host
      } catch {
        return;
      }
      for (let i = 0; i < 40 && !exited; i++) await sleep(250);
      if (!exited) {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Workbench helpers

export class Workbench {
  constructor(readonly page: Page) {}

  async open(url: string, waitForExtension = true): Promise<void> {
    // A loaded machine (several engineers' builds and tests on 2 cores) can take well over the default 30 s.
    await this.page.goto(url, { timeout: 180_000, waitUntil: 'domcontentloaded' });
    await this.page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
    await this.page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ timeout: 90_000 });
    // The extension is active once its pair status bar item shows; menus and commands are registered by then.
    if (waitForExtension) {
      const pairItem = this.page.locator('.statusbar-item[id="ood-lens.ood-lens.oodLens.pair"]');
      if (!(await pairItem.waitFor({ timeout: 45_000 }).then(() => true, () => false))) {
        // On a loaded machine VS Code's 7 s search for `workspaceContains:**/ood-pair.json` can time out and the
        // extension is not activated; one of its commands activates it as a user's first command would.
        await this.command('OOD Lens: Show Log');
        await pairItem.waitFor({ timeout: 300_000 });
        await this.page.keyboard.press('Escape');
      }
    }
    await sleep(1500);
  }

  explorerRow(name: string) {
    return this.page.locator(`.explorer-folders-view .monaco-list-row[aria-label^="${name}"]`).first();
  }

  /** Right-click an Explorer row and choose a context-menu item. */
  async explorerContext(name: string, item: string): Promise<void> {
    const row = this.explorerRow(name);
    await row.waitFor({ timeout: 30_000 });
    const action = this.page.locator('.context-view .action-label', { hasText: item }).first();
    for (let attempt = 1; ; attempt++) {
      await row.click({ button: 'right' });
      if (await action.waitFor({ timeout: 5_000 }).then(() => true, () => false)) break;
      const items = await this.page.locator('.context-view .action-label').allInnerTexts();
      await this.page.keyboard.press('Escape');
      if (attempt === 3) throw new Error(`the Explorer context menu of ${name} has no "${item}" (items: ${items.filter(Boolean).join(' | ')})`);
      await sleep(2000);
    }
    await action.hover();
    await action.click();
    await sleep(300);
    if (await this.page.locator('.context-view .monaco-menu').isVisible().catch(() => false)) await this.page.keyboard.press('Enter');
  }

  quickInput() {
    return this.page.locator('.quick-input-widget');
  }

  /** F1, the command's title, then its row in the palette. */
  async command(title: string): Promise<void> {
    const input = this.page.locator('.quick-input-widget input.input');
    for (let attempt = 0; attempt < 3; attempt++) {
      await this.page.keyboard.press('F1');
      if (await input.waitFor({ state: 'visible', timeout: 5_000 }).then(() => true, () => false)) break;
      // Focus may sit in a webview or a dialog: click the status bar (a neutral spot) and try again.
      await this.page.keyboard.press('Escape');
      await this.page.locator('.part.statusbar').click({ position: { x: 5, y: 5 } }).catch(() => undefined);
    }
    await input.fill(`>${title}`);
    const row = this.page.locator('.quick-input-list .monaco-list-row', { has: this.page.locator('.label-name', { hasText: title }) }).first();
    await row.waitFor({ timeout: 15_000 });
    // The matching row may not be the first: click exactly it.
    await row.click();
    await this.quickInput().waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => undefined);
  }

  /** Ctrl+P, a file name, Enter; returns once that file's tab is the active one. */
  async quickOpen(name: string): Promise<void> {
    const input = this.page.locator('.quick-input-widget input.input');
    const active = this.page.locator(`.tabs-container .tab.active[aria-label^="${name}"]`).first();
    for (let attempt = 1; ; attempt++) {
      await this.page.keyboard.press('Control+P');
      await input.waitFor({ state: 'visible', timeout: 10_000 });
      await input.fill(name);
      // Enter takes the focused row: wait until the filtered list has put this file there.
      await this.page.locator('.quick-input-list .monaco-list-row.focused', { hasText: name }).first().waitFor({ timeout: 15_000 });
      await sleep(300);
      await this.page.keyboard.press('Enter');
      if (await active.waitFor({ timeout: 20_000 }).then(() => true, () => false)) return;
      if (attempt === 3) throw new Error(`Quick Open did not open ${name}`);
      await this.page.keyboard.press('Escape');
    }
  }

  /** Ctrl+G line:column. */
  async goTo(line: number, column: number): Promise<void> {
    await this.page.keyboard.press('Control+G');
    const input = this.page.locator('.quick-input-widget input.input');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    // The Go to Line picker is Quick Open with a ':' prefix: keep it, or this becomes a file search.
    await input.fill(`:${line}:${column}`);
    await sleep(200);
    await this.page.keyboard.press('Enter');
    await this.quickInput().waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => undefined);
  }

  /** Every notification message currently in the DOM (toasts, and the center when open). */
  async notifications(): Promise<string[]> {
    return this.page.locator('.notification-list-item-message').allInnerTexts();
  }

  async waitNotification(what: string, test: (text: string) => boolean, timeout = 60_000): Promise<string> {
    return until(`a notification: ${what}`, async () => (await this.notifications()).find(test), timeout);
  }

  async closeEverything(): Promise<void> {
    await this.page.keyboard.press('Escape');
    await this.command('View: Close All Editors');
    await this.command('Notifications: Clear All Notifications');
  }

  /** The webview frame that has an element matching `selector`. */
  async webviewWith(selector: string, timeout = 90_000): Promise<Frame> {
    return until(`a webview with ${selector}`, async () => {
      for (const frame of this.page.frames()) {
        if (frame === this.page.mainFrame()) continue;
        const found = await frame.evaluate((s) => !!document.querySelector(s), selector).catch(() => false);
        if (found) return frame;
      }
      return undefined;
    }, timeout, 500);
  }

  async screenshot(path: string): Promise<void> {
    await this.page.screenshot({ path });
  }
}

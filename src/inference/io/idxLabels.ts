/**
 * Class labels that sit beside an IDX image file, as MNIST ships them: `…-images-idx3-ubyte[.gz]` next to
 * `…-labels-idx1-ubyte[.gz]`. Used by `eval` to print the classifier's accuracy when they are there.
 */
import { existsSync } from 'node:fs';

/** The labels file beside an IDX image file, or null when there is none. */
export function labelsFileBeside(imagesPath: string): string | null {
  if (!/images-idx3-ubyte(\.gz)?$/.test(imagesPath)) return null;
  const base = imagesPath.replace(/images-idx3-ubyte(\.gz)?$/, 'labels-idx1-ubyte');
  return [base, `${base}.gz`].find((p) => existsSync(p)) ?? null;
}


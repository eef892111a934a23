/**
 * The base of runners that wrap another (constant inputs, a static batch, layers pooled in JS): what they do not
 * change — where the model came from, the runtime that runs it, releasing it — is the inner runner's.
 */
import type { FloatTensor, ModelRunner, TensorInfo } from './types';

export abstract class DelegatingRunner implements ModelRunner {
  abstract readonly inputs: TensorInfo[];
  abstract readonly outputs: TensorInfo[];
  constructor(protected readonly inner: ModelRunner) {}
  get source(): string {
    return this.inner.source;
  }
  get backend(): string {
    return this.inner.backend;
  }
  get provider(): string {
    return this.inner.provider;
  }
  abstract run(feeds: Record<string, FloatTensor>, outputNames?: string[]): Promise<Record<string, FloatTensor>>;
  dispose(): Promise<void> {
    return this.inner.dispose();
  }
}

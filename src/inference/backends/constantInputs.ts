/**
 * A model with inputs besides the image (a `temperature`, a `training` flag) fed the same number on every run:
 * the pair's `classifier.constants` (fit's `--const NAME=VALUE`). The runner shows only the other inputs, so the
 * rest of OOD Lens sees a model with one image input; each constant's tensor takes the shape the model declares,
 * with a free first dimension as long as the batch and other free dimensions of 1.
 */
import { DelegatingRunner } from './delegatingRunner';
import { type FloatTensor, ModelError, type ModelRunner, type TensorInfo } from './types';

export class ConstantInputsRunner extends DelegatingRunner {
  readonly inputs: TensorInfo[];
  readonly outputs: TensorInfo[];
  private readonly fixed: TensorInfo[];
  constructor(inner: ModelRunner, private readonly constants: Record<string, number>) {
    super(inner);
    for (const name of Object.keys(constants)) {
      if (!inner.inputs.some((t) => t.name === name)) throw new ModelError(inner.source, `has no input named "${name}" to fix to a constant (inputs: ${inner.inputs.map((t) => `"${t.name}"`).join(', ')})`);
    }
    this.fixed = inner.inputs.filter((t) => t.name in constants);
    this.inputs = inner.inputs.filter((t) => !(t.name in constants));
    this.outputs = inner.outputs;
  }
  get layerPools() {
    return this.inner.layerPools;
  }

  run(feeds: Record<string, FloatTensor>, outputNames?: string[]): Promise<Record<string, FloatTensor>> {
    const batch = Object.values(feeds)[0]?.dims[0] ?? 1;
    const all: Record<string, FloatTensor> = { ...feeds };
    for (const t of this.fixed) {
      const dims = (t.shape ?? []).map((d, i) => d ?? (i === 0 ? batch : 1));
      all[t.name] = { data: new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(this.constants[t.name]), dims };
    }
    return this.inner.run(all, outputNames);
  }
}

export function withConstants(runner: ModelRunner, constants: Record<string, number> | undefined): ModelRunner {
  return constants && Object.keys(constants).length ? new ConstantInputsRunner(runner, constants) : runner;
}

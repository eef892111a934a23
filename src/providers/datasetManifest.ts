/** The dataset-manifest reader lives in the engine (src/inference/datasetManifest.ts), shared with the CLI. */
export * from '../inference/datasets/datasetManifest';

# OOD Lens CLI as a container image, for batch engines (Kubernetes Indexed Jobs, Slurm with a container
# runtime, CI matrices); see docs/scale.md.
#
#   docker build -t ood-lens .
#   docker run --rm -v "$PWD/data:/data" -v "$PWD/out:/out" ood-lens \
#       score /data --recursive --format jsonl --shard 0/4 --out /out/shard-0.jsonl
#
# Two stages: the build stage has the dev dependencies (esbuild, TypeScript) and bundles dist/cli.js; the
# runtime stage is a slim Node image with production dependencies only, the bundle, and the built-in pairs.
# Node 20 (bookworm-slim: glibc, which onnxruntime-node's and sharp's prebuilt binaries need; not Alpine).

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# `prepare` (the esbuild bundle) needs the sources: install without scripts, build after copying them.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
RUN node scripts/build.mjs --production

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/ood-lens
COPY package.json package-lock.json .npmrc ./
# Production dependencies only. Install scripts run (sharp and onnxruntime-node set up their native
# binaries); .npmrc skips onnxruntime-node's CUDA download (CPU image). `prepare` is not run by --omit=dev
# installs of the package itself (npm runs lifecycle scripts of the root package on `npm ci`, so it is
# dropped first: the bundle comes from the build stage).
RUN npm pkg delete scripts.prepare \
 && npm ci --omit=dev \
 && npm cache clean --force
# The CLI bundles (cli.js; cli-fit.js and cli-reproduce.js, loaded when their command runs), its worker (scoring
# shards, preprocessing) and TensorFlow.js's WASM binaries (TF.js pairs).
COPY --from=build /src/dist/cli.js /src/dist/cli-fit.js /src/dist/cli-reproduce.js /src/dist/preprocessWorker.js /src/dist/*.wasm ./dist/
COPY bin ./bin
# The built-in pairs: manifests, ONNX models, calibration, fitted features, model cards (.dockerignore leaves
# out the TF.js copies and the training intermediates).
COPY models ./models
# Run as an unprivileged user; results go to a mounted volume.
USER node
ENTRYPOINT ["node", "/opt/ood-lens/bin/ood-lens.js"]
CMD ["--help"]

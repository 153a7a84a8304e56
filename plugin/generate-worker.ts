/**
 * A worker thread of `cmp generate` (see parallel.ts): checks file blocks until none is left and sends
 * what it found, then renders cluster blocks on request, from the clusters it checked itself and those
 * the main thread sent. It writes nothing anywhere: the main thread prints.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { LatticeCluster } from '../core/spec/model.js';
import type { FileChecks } from '../core/spec/validate.js';
import { specRenderer, specValidator } from '../cli/load.js';
import { clusterObjects } from './generate.js';
import { CLUSTER_BLOCK, FILE_BLOCK, drain, renderClusterBlock, slice, type RenderRequest, type WorkerReply, type WorkerStart } from './parallel.js';

const start = workerData as WorkerStart;
const port = parentPort;
const counters = new Int32Array(start.counters);
const reply = (r: WorkerReply, transfer: ArrayBuffer[] = []) => port?.postMessage(r, transfer);

try {
  const validator = specValidator();
  const checked: [number, FileChecks][] = [];
  drain(counters, FILE_BLOCK, Math.ceil(start.files.length / start.blockSize), (b) => checked.push([b, validator.checkFiles(slice(start.files, start.blockSize, b))]));
  reply({ type: 'checked', blocks: checked });
  const own = new Map<string, LatticeCluster>();
  for (const [, check] of checked) {
    for (const o of check.objects) if (o.ours && o.object.kind === 'LatticeCluster') own.set(String(o.object.metadata?.name), o.object as unknown as LatticeCluster);
  }
  port?.once('message', (request: RenderRequest) => {
    try {
      const renderer = specRenderer();
      const objectsOf = clusterObjects(renderer, start.options);
      const clusters = new Map([...own, ...request.clusters]);
      const rendered: [number, Uint8Array, number][] = [];
      const utf8 = new TextEncoder();
      drain(counters, CLUSTER_BLOCK, Math.ceil(request.names.length / request.blockSize), (b) => {
        const [text, objects] = renderClusterBlock(renderer, objectsOf, clusters, slice(request.names, request.blockSize, b));
        rendered.push([b, utf8.encode(text), objects]);
      });
      // TextEncoder gives each block its own ArrayBuffer, so moving them leaves nothing shared behind.
      reply({ type: 'rendered', blocks: rendered }, rendered.map(([, bytes]) => bytes.buffer as ArrayBuffer));
    } catch (e) {
      reply({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
    }
  });
} catch (e) {
  reply({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
}

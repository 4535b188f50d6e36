import type { TestProject } from 'vitest/node';
import { ParleyServer, parleyBin } from './helpers/server.js';

let server: ParleyServer | undefined;

export async function setup(project: TestProject) {
  parleyBin(); // fails early with a clear message when the binary is missing
  server = await new ParleyServer().start();
  project.provide('parleyUrl', server.url);
  project.provide('parleyHttp', server.httpUrl);
}

export async function teardown() { await server?.stop(); }

declare module 'vitest' {
  export interface ProvidedContext { parleyUrl: string; parleyHttp: string }
}

import { encode as mpEncode, decode as mpDecode } from '@msgpack/msgpack';
import { ParleyError } from './errors.js';

export type CodecName = 'json' | 'msgpack';

export interface Codec {
  readonly name: CodecName;
  readonly subprotocol: string;
  readonly binary: boolean;
  encode(frame: object): string | Uint8Array;
  decode(data: unknown): Record<string, unknown>;
}

function asMap(v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ParleyError('protocol', 'frame is not a map');
  return v as Record<string, unknown>;
}

function toBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) { // ws fragments (binaryType 'fragments')
    const parts = data.map(toBytes); const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0; for (const p of parts) { out.set(p, o); o += p.length; } return out;
  }
  throw new ParleyError('protocol', 'unexpected frame data type');
}

export const jsonCodec: Codec = {
  name: 'json',
  subprotocol: 'parley.v1.json',
  binary: false,
  encode: (frame) => JSON.stringify(frame),
  decode: (data) => {
    const text = typeof data === 'string' ? data : new TextDecoder().decode(toBytes(data));
    return asMap(JSON.parse(text));
  },
};

export const msgpackCodec: Codec = {
  name: 'msgpack',
  subprotocol: 'parley.v1.msgpack',
  binary: true,
  encode: (frame) => mpEncode(frame, { ignoreUndefined: true }),
  decode: (data) => {
    if (typeof data === 'string') throw new ParleyError('protocol', 'text frame on the msgpack subprotocol');
    return asMap(mpDecode(toBytes(data)));
  },
};

export function getCodec(name: CodecName | Codec | undefined): Codec {
  if (name === undefined || name === 'json') return jsonCodec;
  if (name === 'msgpack') return msgpackCodec;
  if (typeof name === 'object') return name;
  throw new ParleyError('config', `unknown codec ${String(name)}`);
}

// UUIDv7 (RFC 9562): 48-bit ms timestamp, version 7, 12-bit counter in rand_a for monotonicity, variant 10, 62 random bits.
let lastMs = -1;
let counter = 0;

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  const c = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
  if (c?.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < n; i++) b[i] = Math.floor(Math.random() * 256);
  return b;
}

export function uuidv7(now: number = Date.now()): string {
  const b = randomBytes(16);
  if (now <= lastMs) {
    now = lastMs;
    counter++;
    if (counter > 0xfff) { now = ++lastMs; counter = 0; }
  } else {
    lastMs = now;
    counter = b[6]! & 0x07; // random start, leaves room to count up
  }
  const ms = BigInt(now);
  for (let i = 0; i < 6; i++) b[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  b[6] = 0x70 | ((counter >> 8) & 0x0f);
  b[7] = counter & 0xff;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export interface BackoffOptions { minDelayMs: number; maxDelayMs: number }

/**
 * "Full jitter" exponential backoff (AWS architecture blog): delay = random() * min(max, min * 2^attempt).
 * attempt counts from 0. random is injectable for tests.
 */
export function fullJitterDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.maxDelayMs, opts.minDelayMs * Math.pow(2, Math.max(0, Math.min(attempt, 30))));
  return Math.floor(random() * ceiling);
}

/** Who a request counts against: the rate limit's client key, and the bucket of failed API keys. */
import { Address6 } from 'ip-address';
import { isIPv6 } from 'node:net';

/**
 * The key a client's requests are counted under: an IPv4 address (an IPv4-mapped IPv6 one too) as it is,
 * an IPv6 address by its /64 (one host usually holds a whole /64, so a per-address count would give it
 * 2^64 quotas).
 */
export function clientKey(ip: string): string {
  if (!isIPv6(ip)) return ip;
  const address = new Address6(ip);
  if (address.isMapped4()) return address.to4().correctForm();
  return new Address6(`${address.correctForm()}/64`).startAddress().correctForm() + '/64';
}

/**
 * Failed API keys per client: after `max` failures in a window the client is refused (429) until the
 * window ends, whatever key it sends, so keys cannot be guessed at request speed. Bounded in memory: at
 * `capacity` clients the oldest entry is dropped.
 */
export class AuthFailures {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(
    readonly max: number,
    readonly windowMs: number,
    private readonly capacity = 10_000,
  ) {}

  /** Seconds until the client may try again, or 0 when it may now. */
  retryAfter(client: string, now = Date.now()): number {
    const entry = this.failures.get(client);
    if (!entry || entry.resetAt <= now) return 0;
    return entry.count >= this.max ? Math.ceil((entry.resetAt - now) / 1000) : 0;
  }

  record(client: string, now = Date.now()): void {
    const entry = this.failures.get(client);
    if (entry && entry.resetAt > now) {
      entry.count++;
      return;
    }
    this.failures.delete(client);
    if (this.failures.size >= this.capacity) this.failures.delete(this.failures.keys().next().value!);
    this.failures.set(client, { count: 1, resetAt: now + this.windowMs });
  }
}

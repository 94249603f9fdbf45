/**
 * A root written from docs/distributed.md over node:net, independent of the engine's C++: it speaks the
 * worker protocol (version 2) and lets a test send what a real root never would (fields out of range,
 * oversized frames, bad tags) to a real `glm-engine worker`.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export const Msg = { WorkerHello: 1, RootHello: 2, Accept: 3, Weights: 4, Ready: 5, Forward: 6, Partial: 7, Sum: 8, Logits: 9, Ping: 10, End: 11, Error: 12 } as const;
const VERSION = 2;
const TAG = 16;

const hmac = (key: Buffer | string, ...parts: Buffer[]): Buffer => {
  const mac = createHmac('sha256', key);
  for (const p of parts) mac.update(p);
  return mac.digest();
};

export function frameHeader(type: number, length: number): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(0x4c47, 0);
  head.writeUInt8(VERSION, 2);
  head.writeUInt8(type, 3);
  head.writeUInt32LE(length, 4);
  return head;
}

export interface Frame {
  type: number;
  payload: Buffer;
}

export interface HelloFields {
  nodeIndex?: number;
  nodeCount?: number;
  context?: number;
  /** The .m header key/value bytes (a file's bytes 8 .. header size). */
  headerPairs: Buffer;
  sendWeights?: boolean;
  /** Applied to the RootHello after its mac is computed (a relay changing a field). */
  tamper?: (rootHello: Buffer) => void;
}

export class FakeRoot {
  private buffered = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private ended = false;
  private sendKey: Buffer | undefined;
  private receiveKey: Buffer | undefined;
  private sendSequence = 0n;
  private receiveSequence = 0n;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.waiting?.();
    });
    const end = () => {
      this.ended = true;
      this.waiting?.();
    };
    socket.on('close', end);
    socket.on('error', end);
  }

  static connect(port: number): Promise<FakeRoot> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new FakeRoot(socket)));
      socket.once('error', reject);
    });
  }

  /** Resolves with n bytes, or null when the worker closed the connection first. */
  private async read(n: number): Promise<Buffer | null> {
    while (this.buffered.length < n) {
      if (this.ended) return null;
      await new Promise<void>((r) => (this.waiting = r));
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** The next frame (its tag checked once the session is authenticated), or null at the end of the connection. */
  async frame(): Promise<Frame | null> {
    const head = await this.read(8);
    if (!head) return null;
    const length = head.readUInt32LE(4);
    const payload = await this.read(length);
    if (!payload) return null;
    if (this.receiveKey) {
      const tag = await this.read(TAG);
      if (!tag) return null;
      const expected = hmac(this.receiveKey, this.sequence(this.receiveSequence++), head, payload).subarray(0, TAG);
      if (!tag.equals(expected)) throw new Error('the worker sent a frame with a bad tag');
    }
    return { type: head.readUInt8(3), payload: Buffer.from(payload) };
  }

  /** Reads frames until the worker's Error, and returns its message (or null if it closed without one). */
  async errorMessage(): Promise<string | null> {
    for (;;) {
      const f = await this.frame();
      if (!f) return null;
      if (f.type === Msg.Error) return f.payload.toString('utf8');
    }
  }

  /** Resolves when the worker has closed the connection. */
  async closed(): Promise<void> {
    while (!this.ended) await new Promise<void>((r) => (this.waiting = r));
  }

  private sequence(n: bigint): Buffer {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(n);
    return b;
  }

  /** Sends a frame, tagged once the session is authenticated (or with `tag` given, as is). */
  send(type: number, payload: Buffer = Buffer.alloc(0), tag?: Buffer): void {
    const head = frameHeader(type, payload.length);
    const parts = [head, payload];
    if (tag) parts.push(tag);
    else if (this.sendKey) parts.push(this.tagOf(head, payload));
    this.socket.write(Buffer.concat(parts));
  }

  /** The tag the next frame needs (consumes a sequence number). */
  tagOf(head: Buffer, payload: Buffer): Buffer {
    return hmac(this.sendKey!, this.sequence(this.sendSequence++), head, payload).subarray(0, TAG);
  }

  /** WorkerHello, RootHello and Accept, then the session keys; returns the worker's Error if it refused. */
  async handshake(secret: string, f: HelloFields): Promise<string | null> {
    const hello = await this.frame();
    if (!hello || hello.type !== Msg.WorkerHello) throw new Error(`expected WorkerHello, got ${hello?.type}`);
    const fields = Buffer.alloc(32);
    [f.nodeIndex ?? 1, f.nodeCount ?? 2, 0, 0, 0, f.context ?? 64, 30_000, f.sendWeights ? 1 : 0].forEach((v, i) => fields.writeUInt32LE(v >>> 0, 4 * i));
    const pairsLength = Buffer.alloc(4);
    pairsLength.writeUInt32LE(f.headerPairs.length);
    // The root echoes the worker's identity, as a root may.
    const body = Buffer.concat([randomBytes(32), fields, hello.payload.subarray(36, 68), pairsLength, f.headerPairs]);
    const rootHello = Buffer.concat([hmac(secret, Buffer.from('root'), hello.payload, body), body]);
    f.tamper?.(rootHello);
    this.send(Msg.RootHello, rootHello);
    const accept = await this.frame();
    if (!accept) return null;
    if (accept.type === Msg.Error) return accept.payload.toString('utf8');
    if (!accept.payload.equals(hmac(secret, Buffer.from('worker'), hello.payload, rootHello))) throw new Error("the worker's Accept does not prove the secret");
    const session = hmac(secret, Buffer.from('session'), hello.payload, rootHello);
    this.sendKey = hmac(session, Buffer.from('root->worker'));
    this.receiveKey = hmac(session, Buffer.from('worker->root'));
    return null;
  }

  /** Ready both ways (a worker with its own model file). */
  async ready(): Promise<void> {
    this.send(Msg.Ready);
    const r = await this.frame();
    if (!r || r.type !== Msg.Ready) throw new Error(`expected Ready, got ${r ? (r.type === Msg.Error ? r.payload.toString() : r.type) : 'the end'}`);
  }

  /** A Forward frame: four u32 fields and n x dim zero floats. */
  forward(pos: number, n: number, first: number, count: number, rows: number, dim: number): void {
    const fields = Buffer.alloc(16);
    [pos, n, first, count].forEach((v, i) => fields.writeUInt32LE(v >>> 0, 4 * i));
    this.send(Msg.Forward, Buffer.concat([fields, Buffer.alloc(4 * rows * dim)]));
  }

  /** Answers every Partial with a Sum of the same bytes until the worker's Logits or Error. */
  async answerPass(): Promise<Frame | null> {
    for (;;) {
      const f = await this.frame();
      if (!f || f.type !== Msg.Partial) return f;
      this.send(Msg.Sum, f.payload);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

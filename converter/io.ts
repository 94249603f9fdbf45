/** Whole reads and writes: the system calls may move fewer bytes than asked, so both loop. */
import type { FileHandle } from 'node:fs/promises';
import { InputError } from './errors.js';

/** Reads exactly `into.length` bytes at `position`; a short file is an error naming `file`. */
export async function readFully(handle: FileHandle, into: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new InputError(file, `unexpected end of file at byte ${position + done}; the file is truncated`);
    done += bytesRead;
  }
}

/** Appends all of `data` at the handle's current position. */
export async function writeFully(handle: FileHandle, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done);
    done += bytesWritten;
  }
}

/**
 * Write-back as a file is written instead of all at its final sync: every `every` bytes, an fdatasync
 * starts in the background (one at a time), so the disk works while the writer computes and dirty
 * pages stay few (they count against a container's memory). A failed flush is thrown by the next
 * `written` call or by `finish`.
 */
export class WriteBack {
  private pending: Promise<void> = Promise.resolve();
  private running = false;
  private error: unknown;
  private flushedAt = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly every: number,
  ) {}

  /** `total` bytes have been handed to writes that complete with `queued`. */
  written(total: number, queued: Promise<unknown>): void {
    if (this.error) throw this.error;
    if (this.running || total - this.flushedAt < this.every) return;
    this.flushedAt = total;
    this.running = true;
    this.pending = queued
      .then(() => this.handle.datasync())
      .then(
        () => undefined,
        (e: unknown) => {
          this.error ??= e;
        },
      )
      .finally(() => {
        this.running = false;
      });
  }

  /** Waits for the flush in progress; throws if any failed. */
  async finish(): Promise<void> {
    await this.pending;
    if (this.error) throw this.error;
  }
}

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

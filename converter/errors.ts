/**
 * An input the converter cannot accept. The message always names the file and, where there is one,
 * the field or tensor at fault, so a user can find the problem without a stack trace.
 */
export class InputError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`${file}: ${detail}`);
    this.name = 'InputError';
  }
}

/** The caller cancelled the work (its AbortSignal fired); nothing was left behind. */
export class CancelledError extends Error {
  constructor(what: string) {
    super(`${what} cancelled`);
    this.name = 'CancelledError';
  }
}

/** A scripted model for the server and gateway tests: a fixed reply, counted, and endless on request (a stream to cut). */
import type { GenerationRequest, TextGeneration, TextGenerator } from '../server/index.js';

export class FixedGenerator implements TextGenerator {
  readonly modelId = 'fixed';
  served = 0;
  endless = false;
  /** Every reply's usage: 5 prompt tokens, 3 completion tokens (three pieces). */
  static readonly USAGE = { promptTokens: 5, completionTokens: 3 } as const;
  constructor(private readonly reply: string) {}
  health() {
    return { modelLoaded: true, workersConfigured: 0, workersConnected: 0 };
  }
  async *generate(_request: GenerationRequest): TextGeneration {
    this.served++;
    for (let i = 0; this.endless || i < 3; i++) {
      await new Promise((r) => setTimeout(r, this.endless ? 20 : 1));
      yield `${this.reply} `;
    }
    return { ...FixedGenerator.USAGE, cachedTokens: 0, finishReason: 'stop' as const };
  }
}

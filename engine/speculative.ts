/**
 * Speculative sampling's acceptance rule (Leviathan et al. 2023, Chen et al. 2023): a token drafted from
 * the draft model's distribution q is kept with probability min(1, p(token) / q(token)), p being the
 * target model's distribution at that position; on rejection the replacement is drawn from
 * normalize(max(0, p - q)). The accepted-or-replaced token is then distributed exactly as p. At
 * temperature 0 both distributions hold one id, so the rule keeps a draft exactly when it is the
 * target's argmax and otherwise replaces it by that argmax: greedy output is unchanged.
 * The CLI, the server and bench all decode through GenerationSession (generate.ts), which calls this.
 */
import type { TokenDistribution } from './sampler.js';

export type DraftVerdict = { accepted: true } | { accepted: false; token: number };

/** Decides one drafted token; `uniform` gives numbers in [0, 1) from the generation's seeded generator. */
export type AcceptanceRule = (p: TokenDistribution, q: TokenDistribution, token: number, uniform: () => number) => DraftVerdict;

function probabilityOf(d: TokenDistribution, id: number): number {
  const i = d.ids.indexOf(id);
  return i < 0 ? 0 : d.probs[i]!;
}

export const acceptDraft: AcceptanceRule = (p, q, token, uniform) => {
  const pt = probabilityOf(p, token);
  const qt = probabilityOf(q, token);
  // q(token) > 0 since the token was drawn from q; a ratio of at least 1 needs no draw.
  if (pt >= qt || uniform() * qt < pt) return { accepted: true };
  const residual = p.ids.map((id, i) => Math.max(0, p.probs[i]! - probabilityOf(q, id)));
  const total = residual.reduce((a, b) => a + b, 0);
  // total > 0 here: p(token) < q(token) means q puts more mass somewhere p has less, so p exceeds q elsewhere.
  let left = uniform() * total;
  let last = 0;
  for (let i = 0; i < residual.length; i++) {
    if (residual[i]! === 0) continue;
    last = i;
    left -= residual[i]!;
    if (left < 0) break;
  }
  return { accepted: false, token: p.ids[last]! };
};

/** Baselines kept in the Spaces bucket next to the published models. */
import { baselineKey, parseBaseline, type BaselineStore } from './baseline.js';
import { objectUrl, readObjectText, writeObjectText, type SpacesTarget } from './spaces.js';

export function spacesBaselineStore(target: SpacesTarget): BaselineStore {
  return {
    describe: (id) => objectUrl(target, baselineKey(id)),
    async read(id) {
      const text = await readObjectText(target, baselineKey(id));
      return text === undefined ? undefined : parseBaseline(text, objectUrl(target, baselineKey(id)), id);
    },
    write: (id, results) => writeObjectText(target, baselineKey(id), JSON.stringify(results, null, 2), 'application/json'),
  };
}

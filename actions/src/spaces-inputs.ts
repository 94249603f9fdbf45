/** The Spaces bucket and keys, as publish-to-spaces and the `spaces` baseline store take them. */
import type { SpacesTarget } from '../../pipeline/spaces.js';
import { InputError, optionalInput, requiredInput, secretInput } from './inputs.js';

export function spacesTargetInputs(): SpacesTarget {
  const region = optionalInput('region');
  const endpoint = optionalInput('endpoint');
  if (!region && !endpoint) throw new InputError('region', 'give `region` (a Spaces region such as nyc3) or `endpoint`');
  return {
    bucket: requiredInput('bucket'),
    region,
    endpoint,
    accessKeyId: secretInput('access-key-id', true) as string,
    secretAccessKey: secretInput('secret-access-key', true) as string,
  };
}

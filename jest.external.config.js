/**
 * Checks against programs outside Node and the C++ toolchain (numpy, moto, network namespaces) and slow
 * ones (a full engine build through the actions cache); run by `npm run test:external` and CI.
 */
import base from './jest.config.js';

export default { ...base, roots: ['<rootDir>/test/external'], testPathIgnorePatterns: [], globalSetup: undefined };

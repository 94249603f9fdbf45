/** Checks against programs outside Node and the C++ toolchain (numpy); run by `npm run test:external` and CI. */
import base from './jest.config.js';

export default { ...base, roots: ['<rootDir>/test/external'], testPathIgnorePatterns: [] };

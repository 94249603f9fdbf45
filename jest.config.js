/** ESM TypeScript tests run straight from source through ts-jest. */
export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  // test/external needs programs beyond Node and a C++ toolchain: `npm run test:external`.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/external/'],
  globalSetup: '<rootDir>/test/vulkan-notice.js',
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json' }] },
  testTimeout: 120000,
  globalSetup: '<rootDir>/test/left-to-external.mjs',
};

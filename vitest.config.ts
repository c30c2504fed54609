import { defineConfig } from 'vitest/config';

// Two projects: the whole suite under the default crypto backend (libsodium when sodium-native
// loads), and the files that pin the wire bytes (vectors, tamper tests, the AEAD and a loopback
// pair) again under the node:crypto fallback, forced with SESAME_CRYPTO=node.
const common = {
  testTimeout: 30_000,
  hookTimeout: 30_000,
  pool: 'forks' as const,
  globalSetup: ['test/global-setup.ts'],
  setupFiles: ['test/crypto-setup.ts'],
};

export default defineConfig({
  test: {
    projects: [
      { test: { ...common, name: 'default', include: ['test/**/*.test.ts'] } },
      {
        test: {
          ...common,
          name: 'node-crypto',
          include: [
            'test/protocol/vectors.test.ts',
            'test/protocol/tamper.test.ts',
            'test/protocol/aead.test.ts',
            'test/protocol/datagram.test.ts',
            'test/net/crypto-backends.test.ts',
          ],
          env: { SESAME_CRYPTO: 'node' },
        },
      },
    ],
  },
});

// Fuzzing the compatibility profiles: python-mp, seed, seed-hex, none, and the python-mp framing.
import { describe } from 'vitest';
import { compatProperties } from './properties.js';
import { fuzzSuite } from './runner.js';

describe('fuzz: compatibility profiles', () => {
  fuzzSuite('compat', compatProperties);
});

// Fuzzing KeyRing.parse: arbitrary text and JSON, and mutated valid key rings.
import { describe } from 'vitest';
import { keyringProperties } from './properties.js';
import { fuzzSuite } from './runner.js';

describe('fuzz: key ring', () => {
  fuzzSuite('key ring', keyringProperties);
});

// Fuzzing the native client core: any bytes in every state, mutated transcripts, structured ServerHellos.
import { describe } from 'vitest';
import { clientProperties } from './properties.js';
import { fuzzSuite } from './runner.js';

describe('fuzz: native client', () => {
  fuzzSuite('native client', clientProperties);
});

// Fuzzing the native server core: any bytes in every state, mutated transcripts, structured hellos.
import { describe } from 'vitest';
import { serverProperties } from './properties.js';
import { fuzzSuite } from './runner.js';

describe('fuzz: native server', () => {
  fuzzSuite('native server', serverProperties);
});

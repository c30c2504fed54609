// Fuzzing the datagram endpoints: any datagram in every state, and mutated genuine streams.
import { describe } from 'vitest';
import { datagramProperties } from './datagram.js';
import { fuzzSuite } from './runner.js';

describe('fuzz: datagram endpoints', () => {
  fuzzSuite('datagram', datagramProperties);
});

// The seed's example 2 client, on Sesame: answer the challenge with the raw HMAC, then a `>>>`
// prompt: each line goes to the server and its reply is printed; `quit` leaves.
//
//   npm run build && node examples/seed2-client.js [--digest md5] [--port 9527]
import { createInterface } from 'node:readline';
import { compatClientConnection } from '../dist/compat/index.js';
import { openSession } from '../dist/net/client.js';
import { exampleOptions } from './options.js';

const { url, digest } = exampleOptions();
const secret = Buffer.from('芝麻开门', 'utf8');

const session = await openSession(url, compatClientConnection({ profile: 'seed', secret, digest }));
const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: '>>>' });
rl.prompt();
for await (const raw of rl) {
  const data = raw.trim();
  if (data === 'quit') break;
  if (data !== '') {
    const reply = await session.request(Buffer.from(data, 'utf8'));
    console.log(reply.toString('utf8'));
  }
  rl.prompt();
}
rl.close();
await session.close();

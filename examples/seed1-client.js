// The seed's example 1 client, on Sesame: answer the server's 32 random bytes with their hex HMAC,
// print the separator, hang up.
//
//   npm run build && node examples/seed1-client.js [--digest md5] [--port 9527]
import { compatClientConnection } from '../dist/compat/index.js';
import { openSession } from '../dist/net/client.js';
import { exampleOptions } from './options.js';

const { url, digest } = exampleOptions();
const secret = Buffer.from('老衲洗头用飘柔', 'utf8');

const session = await openSession(url, compatClientConnection({ profile: 'seed-hex', secret, digest }));
console.log('--------');
await session.close();

// The seed's example 1 server ("验证客户端链接的合法性"), on Sesame: send 32 random bytes, expect
// the hex HMAC of them back, say whether the client is legitimate, and stop after that one client.
//
//   npm run build && node examples/seed1-server.js [--digest md5] [--port 9527]
import { compatServerProfile } from '../dist/compat/index.js';
import { SesameServer, sessionHandler } from '../dist/index.js';
import { exampleOptions } from './options.js';

const { url, digest } = exampleOptions();
const secret = Buffer.from('老衲洗头用飘柔', 'utf8'); // the seed's key, as in the original

const server = new SesameServer({
  listen: url,
  profile: compatServerProfile({ profile: 'seed-hex', secret, digest }),
  handler: sessionHandler(() => {}), // nothing to serve: the original hangs up right after the check
});
server.once('auth', (event) => {
  console.log(event.ok ? '是合法的客户端' : '不是合法的客户端');
  void server.close(); // the original serves one client, then closes its socket
});
console.error(`listening on ${await server.listen()}`);

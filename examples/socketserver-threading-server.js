// The seed's socketserver ThreadingTCPServer + BaseRequestHandler timestamp server, on Sesame
// (profile none: no authentication, as in the original): one recv(1024) per connection, print and
// send back `[ctime] message`, hang up. Every connection is served concurrently.
//
//   npm run build && node examples/socketserver-threading-server.js [--port 9527]
import { compatServerProfile } from '../dist/compat/index.js';
import { SesameServer, StreamRequestHandler, timestampReply } from '../dist/index.js';
import { exampleOptions, pythonAddress } from './options.js';

const { url } = exampleOptions();

class MyServer extends StreamRequestHandler {
  async handle() {
    console.log('...连接来自:', pythonAddress(this.info));
    const msg = await this.read(); // one chunk of at most 1024 bytes, as recv(1024)
    if (msg === undefined) return;
    const reply = timestampReply(msg, new Date());
    console.log(reply.toString('utf8'));
    this.write(reply);
  }
}

const server = new SesameServer({
  listen: url,
  profile: compatServerProfile({ profile: 'none', framing: 'chunk' }),
  handler: MyServer,
  handshakeTimeoutMs: 300_000, // the client connects before its user types
});
console.log('等待连接...');
console.error(`listening on ${await server.listen()}`);

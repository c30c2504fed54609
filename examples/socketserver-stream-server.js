// The seed's socketserver TCPServer + StreamRequestHandler timestamp server, on Sesame (profile
// none: no authentication, as in the original): read one line per connection, answer
// `[ctime] line` (the line keeps its terminator), and hang up.
//
//   npm run build && node examples/socketserver-stream-server.js [--port 9527]
import { compatServerProfile } from '../dist/compat/index.js';
import { SesameServer, StreamRequestHandler, timestampReply } from '../dist/index.js';
import { exampleOptions, pythonAddress } from './options.js';

const { url } = exampleOptions();

class MyRequestHandler extends StreamRequestHandler {
  async handle() {
    console.log('...connected from:', pythonAddress(this.info));
    const line = await this.read(); // one line, as rfile.readline()
    if (line !== undefined) this.write(timestampReply(line, new Date()));
  }
}

const server = new SesameServer({
  listen: url,
  profile: compatServerProfile({ profile: 'none', framing: 'line' }),
  handler: MyRequestHandler,
  // Nothing arrives until the client's user has typed a line: wait as long as for an idle client.
  handshakeTimeoutMs: 300_000,
});
console.log('waiting for connection...');
console.error(`listening on ${await server.listen()}`);

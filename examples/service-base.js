// A BaseRequestHandler: the whole connection is yours. This one sums the numbers a client sends
// and answers with the total when the client says "total"; setup() and finish() run around it.
//
//   node examples/service-base.js [URL] [--keyring PATH]
//   printf '1\n2\n3\ntotal\n' | npx sesame connect URL --keyring PATH
import { BaseRequestHandler, defaultKeyringPath, ensureKeyring, presharedKeys, SesameServer } from 'sesame';

class Adder extends BaseRequestHandler {
  setup() {
    this.total = 0;
    console.log(`${this.clientAddress} (${this.info.principal}) connected`);
  }

  async handle() {
    for await (const message of this.request) {
      const text = message.toString('utf8');
      if (text === 'total') this.request.send(Buffer.from(String(this.total)));
      else {
        this.total += Number(text);
        this.request.send(Buffer.from('ok'));
      }
    }
  }

  finish() {
    console.log(`${this.clientAddress} done, total ${this.total}`);
  }
}

const url = process.argv[2] ?? 'tcp://127.0.0.1:9602';
const at = process.argv.indexOf('--keyring');
const { ring } = await ensureKeyring(at > 0 ? process.argv[at + 1] : defaultKeyringPath(), {
  principal: 'default',
});
const server = new SesameServer({
  listen: url,
  keys: presharedKeys(ring),
  handler: Adder,
  // verifyRequest sees the authenticated peer before it is served: here, by principal.
  verifyRequest: (info) => info.principal !== 'blocked',
});
console.log(`listening on ${await server.listen()}`);
process.once('SIGTERM', () => server.close());
process.once('SIGINT', () => server.close());

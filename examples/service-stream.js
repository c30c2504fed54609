// A custom authenticated service in a few lines: a StreamRequestHandler answers each message.
//
//   node examples/service-stream.js [URL] [--keyring PATH]     (URL: tcp://, unix:// or udp://)
//   printf 'hello\n' | npx sesame connect URL --keyring PATH
import {
  DatagramRequestHandler,
  defaultKeyringPath,
  ensureKeyring,
  presharedKeys,
  SesameServer,
  StreamRequestHandler,
  UdpServer,
} from 'sesame';

class Shout extends StreamRequestHandler {
  respond(message) {
    return `${this.info.principal} says ${message.toString('utf8').toUpperCase()}`;
  }
}

// The same service for datagrams: one handler per datagram, as socketserver does.
class ShoutDatagram extends DatagramRequestHandler {
  respond(packet) {
    return `${this.info.principal} says ${packet.toString('utf8').toUpperCase()}`;
  }
}

const url = process.argv[2] ?? 'tcp://127.0.0.1:9601';
const at = process.argv.indexOf('--keyring');
const { ring } = await ensureKeyring(at > 0 ? process.argv[at + 1] : defaultKeyringPath(), {
  principal: 'default',
});
const server = url.startsWith('udp://')
  ? new UdpServer({ listen: url, keys: presharedKeys(ring), handler: ShoutDatagram })
  : new SesameServer({ listen: url, keys: presharedKeys(ring), handler: Shout });
console.log(`listening on ${await server.listen()}`);
process.once('SIGTERM', () => server.close());
process.once('SIGINT', () => server.close());

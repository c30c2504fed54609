"""Unauthenticated clients in the style of the seed's socketserver examples: a new connection
for every stdin line. --framing line sends the line with CRLF and prints the reply stripped;
--framing chunk sends the bare text and prints the reply as it came."""

import socket
import sys

from common import complain, parser, say


def main():
    p = parser('socketserver timestamp client')
    p.add_argument('--framing', choices=['line', 'chunk'], default='chunk')
    args = p.parse_args()
    for line in sys.stdin:
        text = line.rstrip('\n')
        if not text:
            break
        sock = socket.create_connection((args.host, args.port), timeout=20)
        payload = text + '\r\n' if args.framing == 'line' else text
        sock.sendall(payload.encode('utf-8'))
        reply = sock.recv(1024)
        sock.close()
        if not reply:
            complain('the server closed the connection without replying')
            return 1
        decoded = reply.decode('utf-8')
        say(decoded.strip() if args.framing == 'line' else decoded)
    return 0


if __name__ == '__main__':
    sys.exit(main())

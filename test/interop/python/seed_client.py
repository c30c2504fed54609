"""A client that follows the seed's HMAC challenge-response (example 2, or example 1 with --hex).

Reads the server's 32-byte challenge, answers with HMAC(key, challenge) (raw, or hex with --hex),
then sends each non-empty stdin line and prints the reply. A server that hangs up instead of
replying has refused the key: that is reported on stderr with exit status 1.
"""

import hmac
import socket
import sys

from common import complain, parser, read_secret, recv_exactly, say


def main():
    p = parser('seed challenge-response client')
    p.add_argument('--secret-file', required=True)
    p.add_argument('--digest', default='sha256')
    p.add_argument('--hex', action='store_true')
    args = p.parse_args()
    key = read_secret(args.secret_file)
    sock = socket.create_connection((args.host, args.port), timeout=20)
    challenge = recv_exactly(sock, 32)
    if len(challenge) != 32:
        complain('refused: no challenge from the server')
        return 1
    mac = hmac.new(key, challenge, args.digest)
    if args.hex:
        sock.sendall(mac.hexdigest().encode('utf-8'))
        say('--------')
        sock.close()
        return 0
    sock.sendall(mac.digest())
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        try:
            sock.sendall(text.encode('utf-8'))
            reply = sock.recv(1024)
        except ConnectionError:
            reply = b''
        if not reply:
            complain('refused: the server closed the connection without replying')
            return 1
        say(reply.decode('utf-8'))
    sock.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())

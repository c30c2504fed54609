"""A multiprocessing.connection client: sends each non-empty stdin line with send_bytes() and
prints the reply from recv_bytes(). Handshake: the real Client(authkey=...) of this Python, or with
--format 312 the 3.12+ rules from mp312.py over an unauthenticated Client."""

import sys
from multiprocessing.connection import AuthenticationError, Client

import mp312
from common import complain, parser, read_secret, say


def main():
    p = parser('multiprocessing.connection client')
    p.add_argument('--secret-file', required=True)
    p.add_argument('--format', choices=['native', '312'], default='native')
    p.add_argument('--digest', default='sha256')
    args = p.parse_args()
    key = read_secret(args.secret_file)
    try:
        if args.format == '312':
            conn = Client((args.host, args.port))
            mp312.answer(conn, key)
            mp312.deliver(conn, key, args.digest)
        else:
            conn = Client((args.host, args.port), authkey=key)
    except (AuthenticationError, mp312.AuthError) as e:
        complain('refused: %s: %s' % (type(e).__name__, e))
        return 1
    except EOFError:
        complain('refused: the server closed the connection (EOFError)')
        return 1
    for line in sys.stdin:
        text = line.rstrip('\n')
        if not text.strip():
            continue
        conn.send_bytes(text.encode('utf-8'))
        say(conn.recv_bytes().decode('utf-8'))
    conn.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""A multiprocessing.connection server: each message received with recv_bytes() is sent back with
send_bytes(), after a ctime() stamp. Handshake: the real Listener(authkey=...) of this Python, or
with --format 312 the 3.12+ rules from mp312.py over an unauthenticated Listener.
--answer-secret-file makes the server answer the client's challenge with another key."""

import time
from multiprocessing.connection import AuthenticationError, Listener, answer_challenge, deliver_challenge

import mp312
from common import parser, read_secret, say


def handshake(listener, args, key, answer_key):
    conn = listener.accept()
    if args.format == '312':
        mp312.deliver(conn, key, args.digest)
        mp312.answer(conn, answer_key)
    elif answer_key != key:
        deliver_challenge(conn, key)
        answer_challenge(conn, answer_key)
    return conn


def main():
    p = parser('multiprocessing.connection timestamp server')
    p.add_argument('--secret-file', required=True)
    p.add_argument('--answer-secret-file')
    p.add_argument('--format', choices=['native', '312'], default='native')
    p.add_argument('--digest', default='sha256')
    args = p.parse_args()
    key = read_secret(args.secret_file)
    answer_key = read_secret(args.answer_secret_file) if args.answer_secret_file else key
    plain = args.format == '312' or answer_key != key
    listener = Listener((args.host, args.port), authkey=None if plain else key)
    say('listening on %d' % listener.address[1])
    while True:
        try:
            conn = handshake(listener, args, key, answer_key)
        except (AuthenticationError, mp312.AuthError) as e:
            say('refused: %s: %s' % (type(e).__name__, e))
            continue
        except (EOFError, OSError) as e:
            say('handshake failed: %s' % type(e).__name__)
            continue
        say('authenticated')
        try:
            while True:
                data = conn.recv_bytes()
                conn.send_bytes(b'[' + time.ctime().encode('ascii') + b'] ' + data)
        except EOFError:
            pass
        finally:
            conn.close()


if __name__ == '__main__':
    main()

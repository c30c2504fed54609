"""A server that follows the seed's HMAC challenge-response (example 2, or example 1 with --hex).

The server sends 32 random bytes and expects HMAC(key, those bytes) back: the raw digest, or with
--hex its hex form as UTF-8 text. Example 2 then answers every chunk with a ctime() stamp; example 1
only reports whether the client was legitimate and hangs up.
"""

import hmac
import os
import socket
from time import ctime

from common import parser, read_secret, recv_exactly, say


def serve_one(conn, key, digest, hex_answer):
    challenge = os.urandom(32)
    conn.sendall(challenge)
    mac = hmac.new(key, challenge, digest)
    if hex_answer:
        expected = mac.hexdigest().encode('utf-8')
        answer = conn.recv(1024)
        say('legitimate client' if hmac.compare_digest(answer, expected) else 'not a legitimate client')
        return
    expected = mac.digest()
    answer = recv_exactly(conn, len(expected))
    if not hmac.compare_digest(answer, expected):
        say('refused: wrong answer')
        return
    say('authenticated')
    while True:
        data = conn.recv(1024)
        if not data:
            break
        conn.sendall(('[%s] %s' % (ctime(), data.decode('utf-8'))).encode('utf-8'))


def main():
    p = parser('seed challenge-response server')
    p.add_argument('--secret-file', required=True)
    p.add_argument('--digest', default='sha256')
    p.add_argument('--hex', action='store_true')
    args = p.parse_args()
    key = read_secret(args.secret_file)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(5)
    say('listening on %d' % listener.getsockname()[1])
    while True:
        conn, addr = listener.accept()
        conn.settimeout(20)
        say('connection from %s:%d' % addr)
        try:
            serve_one(conn, key, args.digest, args.hex)
        except OSError as e:
            say('connection failed: %s' % e)
        finally:
            conn.close()


if __name__ == '__main__':
    main()

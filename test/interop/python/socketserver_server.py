"""Unauthenticated ctime() servers in the style of the seed's socketserver examples.

--framing line: TCPServer + StreamRequestHandler, one readline() per connection, the line echoed
after the stamp with its terminator. --framing chunk: ThreadingTCPServer + BaseRequestHandler,
one recv(1024) per connection.
"""

import socketserver
from time import ctime

from common import parser, say


class LineHandler(socketserver.StreamRequestHandler):
    def handle(self):
        say('connected from %s:%d' % self.client_address)
        line = self.rfile.readline()
        self.wfile.write(('[%s] %s' % (ctime(), line.decode('utf-8'))).encode('utf-8'))


class ChunkHandler(socketserver.BaseRequestHandler):
    def handle(self):
        say('connected from %s:%d' % self.client_address)
        data = self.request.recv(1024)
        reply = '[%s] %s' % (ctime(), data.decode('utf-8'))
        say(reply)
        self.request.sendall(reply.encode('utf-8'))


def main():
    p = parser('socketserver timestamp server')
    p.add_argument('--framing', choices=['line', 'chunk'], default='chunk')
    args = p.parse_args()
    socketserver.TCPServer.allow_reuse_address = True
    if args.framing == 'line':
        server = socketserver.TCPServer((args.host, args.port), LineHandler)
    else:
        server = socketserver.ThreadingTCPServer((args.host, args.port), ChunkHandler)
    say('listening on %d' % server.server_address[1])
    server.serve_forever()


if __name__ == '__main__':
    main()

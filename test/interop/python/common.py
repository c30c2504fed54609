"""Helpers shared by the Python test peers (stdlib only, Python 3.8+)."""

import argparse
import sys


def read_secret(path):
    """The key is the file's bytes, minus one trailing newline if present."""
    with open(path, 'rb') as f:
        data = f.read()
    return data[:-1] if data.endswith(b'\n') else data


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=0)
    return p


def say(*parts):
    """Print one line and flush at once: the tests read these lines as they come."""
    print(*parts, flush=True)


def complain(*parts):
    print(*parts, file=sys.stderr, flush=True)


def recv_exactly(sock, n):
    """Read exactly n bytes, or fewer if the peer closes first."""
    got = b''
    while len(got) < n:
        more = sock.recv(n - len(got))
        if not more:
            break
        got += more
    return got

"""The authkey handshake of multiprocessing.connection in CPython 3.12+, written from the rules
documented in CPython's Lib/multiprocessing/connection.py (3.12), for testing on an older Python.

A challenge is b'#CHALLENGE#' + M with M = b'{name}' + 40 random bytes (or, from Python <= 3.11,
M = 20 random bytes). The answer is b'{name}' + HMAC-name(key, M) -- the MAC covers the prefix --
or, for a 20-byte M, the bare HMAC-MD5. A verifier reads a 16- or 20-byte answer as bare HMAC-MD5
and anything else as b'{name}' + MAC for an allowed name, whatever it asked for.

Run as a program, prints deterministic test vectors as JSON.
"""

import hashlib
import hmac
import json
import os
import sys

CHALLENGE = b'#CHALLENGE#'
WELCOME = b'#WELCOME#'
FAILURE = b'#FAILURE#'
ALLOWED = ('md5', 'sha256', 'sha384', 'sha3_256', 'sha3_384')


class AuthError(Exception):
    pass


def split_prefix(data):
    """(name, rest) for data = b'{name}' + rest with an allowed name, else None."""
    if not data.startswith(b'{'):
        return None
    end = data.find(b'}', 1, max(len(n) for n in ALLOWED) + 2)
    if end < 1:
        return None
    name = data[1:end].decode('latin-1')
    return (name, data[end + 1:]) if name in ALLOWED else None


def challenge_message(name, random):
    """M for a challenge in format `name` ('legacy' or an allowed digest)."""
    return random if name == 'legacy' else b'{' + name.encode('ascii') + b'}' + random


def answer_for(key, message):
    if len(message) < 20:
        raise AuthError('challenge too short')
    if len(message) == 20:
        return hmac.new(key, message, 'md5').digest()
    split = split_prefix(message)
    if split is None:
        raise AuthError('challenge without a supported {digest} prefix')
    name = split[0]
    return b'{' + name.encode('ascii') + b'}' + hmac.new(key, message, name).digest()


def check_answer(key, message, answer):
    """True when `answer` proves the key for challenge message `message`."""
    if len(answer) in (16, 20):
        name, mac = 'md5', answer
    else:
        split = split_prefix(answer)
        if split is None:
            return False
        name, mac = split
    expected = hmac.new(key, message, name).digest()
    return len(expected) == len(mac) and hmac.compare_digest(expected, mac)


def deliver(conn, key, name='sha256'):
    """Challenge the peer over a multiprocessing Connection; raises AuthError on a wrong answer."""
    message = challenge_message(name, os.urandom(20 if name == 'legacy' else 40))
    conn.send_bytes(CHALLENGE + message)
    answer = conn.recv_bytes(256)
    if check_answer(key, message, answer):
        conn.send_bytes(WELCOME)
    else:
        conn.send_bytes(FAILURE)
        raise AuthError('digest received was wrong')


def answer(conn, key):
    """Answer the peer's challenge; raises AuthError when the peer does not welcome the answer."""
    data = conn.recv_bytes(256)
    if not data.startswith(CHALLENGE):
        raise AuthError('expected a challenge')
    conn.send_bytes(answer_for(key, data[len(CHALLENGE):]))
    if conn.recv_bytes(256) != WELCOME:
        raise AuthError('digest sent was rejected')


def frame(payload):
    return len(payload).to_bytes(4, 'big', signed=True) + payload


def vectors():
    out = []
    for key in (b'sesame python-mp vector key', '芝麻开门'.encode('utf-8')):
        for name in ('legacy',) + ALLOWED:
            size = 20 if name == 'legacy' else 40
            random = hashlib.sha512(b'random for ' + name.encode('ascii')).digest()[:size]
            message = challenge_message(name, random)
            ans = answer_for(key, message)
            out.append({
                'key': key.hex(),
                'format': name,
                'random': random.hex(),
                'challengeFrame': frame(CHALLENGE + message).hex(),
                'answerFrame': frame(ans).hex(),
                # What a Python <= 3.11 responder sends to the same challenge (accepted by 3.12+).
                'legacyAnswer': hmac.new(key, message, 'md5').digest().hex(),
            })
    return out


if __name__ == '__main__':
    json.dump(vectors(), sys.stdout, indent=1)
    sys.stdout.write('\n')

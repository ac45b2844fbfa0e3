"""ZeroMQ CURVE for rigs on a network: key pairs on disk, sockets that serve or connect securely, and
the rule that nothing is bound beyond loopback without it unless the user says so.

A key pair is two files made by `raphe keys` (ZeroMQ's certificate format): ``NAME.key`` (the
public key, to give to peers) and ``NAME.key_secret`` (to keep). A serving socket (raphe's outputs,
a replay's data socket) holds its secret key and admits only the clients whose public keys lie in a
folder; a connecting socket (raphe's subscriber) holds its own secret key and the server's public
key. A refused handshake is seen by the client's socket monitor and reported as one line.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from raphe.core.errors import RapheError

log = logging.getLogger("raphe.streamer")


@dataclass(frozen=True)
class Curve:
    """One side's CURVE settings.

    Parameters
    ----------
    secret_file : this side's ``NAME.key_secret`` (its public key is read from it too).
    clients : serving: a folder of the ``.key`` files of the clients admitted (None: any client
        that knows this side's public key).
    server_file : connecting: the server's ``NAME.key``.
    """

    secret_file: Path
    clients: Path | None = None
    server_file: Path | None = None

    def keypair(self) -> tuple[bytes, bytes]:
        try:
            public, secret = zmq.auth.load_certificate(str(self.secret_file))
        except (OSError, ValueError) as exc:
            raise RapheError(f"{self.secret_file}: not a key pair made by `raphe keys` ({exc})") from None
        if secret is None:
            raise RapheError(f"{self.secret_file}: holds no secret key (use the .key_secret file)")
        return public, secret

    def server_public(self) -> bytes:
        if self.server_file is None:
            raise RapheError("connecting with CURVE needs the server's public key (its .key file)")
        try:
            public, _ = zmq.auth.load_certificate(str(self.server_file))
        except (OSError, ValueError) as exc:
            raise RapheError(f"{self.server_file}: not a public key made by `raphe keys` ({exc})") from None
        return public


def make_keys(folder: str | Path, name: str) -> tuple[Path, Path]:
    """A new key pair ``folder/NAME.key`` and ``folder/NAME.key_secret``; existing files are not replaced."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".key", ".key_secret"):
        if (folder / f"{name}{suffix}").exists():
            raise RapheError(f"{folder / (name + suffix)} exists; choose another name or folder")
    public, secret = zmq.auth.create_certificates(str(folder), name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)


def authenticator(context: zmq.Context, curve: Curve) -> ThreadAuthenticator:
    """The thread that admits CURVE clients to the serving sockets of ``context``: those whose public
    keys lie in ``curve.clients``, or any that knows the server's key. Stop it before the context."""
    if curve.clients is not None and not Path(curve.clients).is_dir():
        raise RapheError(f"{curve.clients}: not a folder of client public keys")
    auth = ThreadAuthenticator(context, log=log)
    auth.start()
    auth.configure_curve(domain="*", location=str(curve.clients) if curve.clients else zmq.auth.CURVE_ALLOW_ANY)
    return auth


def serve_securely(socket: zmq.Socket, curve: Curve) -> None:
    """Make ``socket`` (not yet bound) a CURVE server with ``curve``'s key pair."""
    public, secret = curve.keypair()
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True


def connect_securely(socket: zmq.Socket, curve: Curve) -> None:
    """Make ``socket`` (not yet connected) a CURVE client of the server whose public key ``curve`` names."""
    public, secret = curve.keypair()
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = curve.server_public()


def is_loopback(endpoint: str) -> bool:
    """Whether a TCP endpoint is bound on a loopback address only (ipc and inproc count as local)."""
    parts = urlsplit(endpoint)
    if parts.scheme != "tcp":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or "*": every interface


def check_exposure(endpoints: list[str], curve: Curve | None, insecure: bool) -> str | None:
    """Refuse to bind beyond loopback without CURVE unless ``insecure``; the warning to print if so."""
    exposed = [e for e in endpoints if not is_loopback(e)]
    if not exposed or curve is not None:
        return None
    if not insecure:
        raise RapheError(f"{', '.join(exposed)} is reachable from the network; give a key pair (--curve-secret) "
                         "or accept an unauthenticated socket with --insecure")
    return f"warning: {', '.join(exposed)} is reachable from the network without authentication (--insecure)"

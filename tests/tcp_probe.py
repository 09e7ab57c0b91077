"""Read a TCP socket option of a socket that another process (e.g. jupyter_server) accepted.

Nothing outside a process shows TCP_NODELAY (``ss -i`` and ``/proc/net/tcp`` do not), so this
takes a duplicate of the server's own file descriptor with ``pidfd_getfd(2)`` (Linux >= 5.6,
needs ptrace rights over the server: root, or the server being our child under Yama scope 1) and
calls ``getsockopt`` on it. The duplicate shares the server's socket, so the value is the one the
server set; closing the duplicate leaves the server's socket alone. The server is found as the
process holding the listening socket, so no server code is involved.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

_SYS_PIDFD_GETFD = 438  # same number on every Linux architecture (the generic syscall table)
_ESTABLISHED = "01"
_LISTEN = "0A"


@dataclass(frozen=True)
class TcpSocket:
    local_port: int
    remote_port: int
    state: str
    inode: int


def tcp_sockets() -> list[TcpSocket]:
    """Every TCP socket of this network namespace (IPv4 and IPv6), from /proc/net/tcp{,6}."""
    found: list[TcpSocket] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            found.append(
                TcpSocket(int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state, inode)
            )
    return found


def _socket_fds(pid: int) -> dict[int, int]:
    """{socket inode: fd number} of process ``pid``."""
    fds: dict[int, int] = {}
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:  # gone, or not ours to read
        return fds
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:["):
            fds[int(target[len("socket:[") : -1])] = int(entry.name)
    return fds


def listener_pid(port: int) -> int:
    """The process that listens on TCP ``port``."""
    inodes = {s.inode for s in tcp_sockets() if s.local_port == port and s.state == _LISTEN}
    if not inodes:
        raise RuntimeError(f"nothing listens on port {port}")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and inodes & _socket_fds(int(proc.name)).keys():
            return int(proc.name)
    raise RuntimeError(f"no process of ours holds the listening socket of port {port}")


def _pidfd_getfd(pid: int, fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        dup = int(libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0))
        if dup < 0:
            err = ctypes.get_errno()
            hint = (
                " (kernel without pidfd_getfd: Linux >= 5.6 needed)"
                if err == errno.ENOSYS
                else " (no ptrace rights over the server?)"
                if err == errno.EPERM
                else ""
            )
            raise OSError(err, f"pidfd_getfd({pid}, {fd}): {os.strerror(err)}{hint}")
        return dup
    finally:
        os.close(pidfd)


def nodelay_of(pid: int, fd: int) -> bool:
    """TCP_NODELAY of file descriptor ``fd`` in process ``pid``."""
    with socket.socket(fileno=_pidfd_getfd(pid, fd)) as dup:
        return bool(dup.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def accepted_nodelay(server_port: int) -> dict[int, bool]:
    """{client port: TCP_NODELAY} of every established connection the server on ``server_port`` accepted."""
    pid = listener_pid(server_port)
    fds = _socket_fds(pid)
    result: dict[int, bool] = {}
    for s in tcp_sockets():
        if s.local_port == server_port and s.state == _ESTABLISHED and s.inode in fds:
            result[s.remote_port] = nodelay_of(pid, fds[s.inode])
    return result


def server_side_nodelay(server_port: int, client_port: int) -> bool:
    """TCP_NODELAY of the server's end of our connection from ``client_port`` to ``server_port``."""
    accepted = accepted_nodelay(server_port)
    if client_port not in accepted:
        raise RuntimeError(
            f"the server on port {server_port} holds no connection from port {client_port} "
            f"(it holds {sorted(accepted)})"
        )
    return accepted[client_port]

"""asyncssh local port forwarding on usernet's own address, run unmodified by the network tests.

    python ssh_forward.py SSH_HOST SSH_PORT KEY LISTEN_HOST DEST_HOST DEST_PORT

Listens on LISTEN_HOST (usernet's address: asyncssh binds that socket itself) and
forwards each connection through the SSH server to DEST_HOST:DEST_PORT. Prints
"forwarding PORT".
"""

import asyncio
import sys

import asyncssh


async def main() -> None:
    ssh_host, ssh_port, key, listen_host, dest_host, dest_port = sys.argv[1:7]
    async with asyncssh.connect(ssh_host, int(ssh_port), username="root", client_keys=[key], known_hosts=None) as conn:
        listener = await conn.forward_local_port(listen_host, 0, dest_host, int(dest_port))
        print(f"forwarding {listener.get_port()}", flush=True)
        await listener.wait_closed()


asyncio.run(main())

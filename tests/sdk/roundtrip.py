"""The AgentFS Python SDK (0.6.4) on one of our session databases.

usage: roundtrip.py SESSION_DB

Reads what agentfs wrote (a file, a key), then writes its own: a file in a new directory, a
key, and a completed tool call. Exits non-zero on any failed check.
"""

import asyncio
import sys

from agentfs_sdk import AgentFS, AgentFSOptions


async def main():
    afs = await AgentFS.open(AgentFSOptions(path=sys.argv[1]))
    got = await afs.fs.read_file("/ours.txt")
    assert got == "written by agentfs\n", repr(got)
    assert await afs.kv.get("from_agentfs") == {"n": 1}
    await afs.fs.write_file("/sdkdir/made.txt", "written by the SDK\n")
    await afs.kv.set("from_sdk", {"ok": True})
    call = await afs.tools.start("sdk_search", {"q": "main"})
    await afs.tools.success(call, {"hits": 2})
    await afs.close()


asyncio.run(main())

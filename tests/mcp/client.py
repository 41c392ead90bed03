"""Drives `agentfs serve mcp` with the official Python MCP SDK as the client.

usage: client.py AGENTFS_BIN SESSION_DB plain|overlay|read-only

Calls every tool, good and bad input alike, checks each answer, and prints one JSON line:
{"calls": N, "errors": M} (the tool calls made, and how many answered with a tool error),
for the test to compare with the tool_calls rows. Exits non-zero on any failed check.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = {
    "read_file", "write_file", "edit_file", "list_dir", "mkdir", "remove", "rename", "stat",
    "search", "kv_get", "kv_set", "kv_delete", "kv_list", "changes", "diff", "sql",
}


def text(result):
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


class Calls:
    def __init__(self, session):
        self.session = session
        self.calls = 0
        self.errors = 0

    async def ok(self, name, **args):
        self.calls += 1
        r = await self.session.call_tool(name, args)
        assert not r.is_error, f"{name} {args} failed: {text(r)}"
        return text(r)

    async def fails(self, name, expect, **args):
        self.calls += 1
        self.errors += 1
        r = await self.session.call_tool(name, args)
        assert r.is_error, f"{name} {args} should have failed: {text(r)}"
        assert expect in text(r), f"{name} {args}: {text(r)!r} does not say {expect!r}"
        return text(r)


async def files(c):
    assert (await c.ok("write_file", path="/notes/a.txt", content="hello\nworld\n")).startswith("created")
    got = await c.ok("read_file", path="/notes/a.txt")
    assert got == "     1\thello\n     2\tworld\n", repr(got)
    assert await c.ok("read_file", path="/notes/a.txt", offset=2, limit=1) == "     2\tworld\n"
    await c.ok("edit_file", path="/notes/a.txt", old_string="world", new_string="there")
    assert "there" in await c.ok("read_file", path="/notes/a.txt")
    await c.fails("edit_file", "does not occur", path="/notes/a.txt", old_string="nope", new_string="x")
    await c.ok("write_file", path="/notes/two.txt", content="x x\n")
    await c.fails("edit_file", "occurs 2 times", path="/notes/two.txt", old_string="x", new_string="y")
    await c.ok("edit_file", path="/notes/two.txt", old_string="x", new_string="y", replace_all=True)
    assert "y y" in await c.ok("read_file", path="/notes/two.txt")
    listing = await c.ok("list_dir", path="/notes")
    assert "a.txt  (12 bytes)" in listing and "two.txt" in listing, listing
    await c.ok("mkdir", path="/d/e")
    await c.ok("rename", **{"from": "/notes/a.txt", "to": "/d/e/b.txt"})
    st = json.loads(await c.ok("stat", path="/d/e/b.txt"))
    assert st["type"] == "file" and st["size"] == 12, st
    found = await c.ok("search", glob="**/*.txt")
    assert "/d/e/b.txt" in found and "/notes/two.txt" in found, found
    assert "/d/e/b.txt:2: there" in await c.ok("search", pattern="^the", path="/d")
    await c.fails("search", "not a valid regular expression", pattern="the(re")
    await c.fails("read_file", "no such file or directory", path="/missing.txt")
    await c.fails("read_file", "is a directory", path="/d")
    await c.fails("write_file", "is a directory", path="/d", content="x")
    await c.fails("list_dir", "not a directory", path="/d/e/b.txt")
    await c.fails("read_file", "path is missing")
    await c.fails("remove", "not empty", path="/d")
    # A call that fails part-way leaves nothing behind: the directories it made go too.
    await c.fails("write_file", "", path="/made1/made2/" + "x" * 300, content="x")
    await c.fails("stat", "no such file", path="/made1")
    await c.ok("write_file", path="/bin.dat", content="\u0000\u0001binary")
    await c.fails("read_file", "binary file", path="/bin.dat")


async def kv(c):
    await c.ok("kv_set", key="agent", value={"step": 1})
    assert json.loads(await c.ok("kv_get", key="agent")) == {"step": 1}
    assert json.loads(await c.ok("kv_list")) == {"agent": {"step": 1}}
    await c.ok("kv_delete", key="agent")
    await c.fails("kv_get", "no key", key="agent")


async def inspect(c, overlay):
    changes = json.loads(await c.ok("changes"))
    paths = {ch["path"] for ch in changes}
    assert "/d/e/b.txt" in paths, paths
    diff = await c.ok("diff", path="/d")
    assert "+there" in diff, diff
    rows = json.loads(await c.ok("sql", query="SELECT name, status FROM tool_calls ORDER BY id LIMIT 2"))
    assert rows["columns"] == ["name", "status"] and rows["rows"][0][0] == "write_file", rows
    await c.fails("sql", "queries only", query="DELETE FROM tool_calls")
    await c.fails("sql", "no such table", query="SELECT * FROM nowhere")
    if overlay:
        # Base files read in place, edited through a copy-up, deleted through a whiteout.
        assert "read me" in await c.ok("read_file", path="/README")
        await c.ok("edit_file", path="/src/main.rs", old_string="fn main() {}", new_string="fn main() { run() }")
        await c.ok("remove", path="/docs/a.md")
        await c.fails("read_file", "no such file", path="/docs/a.md")
        diff = await c.ok("diff")
        assert "+fn main() { run() }" in diff and "-fn main() {}" in diff, diff
        listing = await c.ok("list_dir", path="/")
        assert "README  (8 bytes)" in listing and "src/" in listing, listing
    await c.ok("remove", path="/d", recursive=True)
    await c.fails("stat", "no such file", path="/d/e/b.txt")


async def main():
    binary, db, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    args = ["serve", "mcp", db] + (["--read-only"] if mode == "read-only" else [])
    params = StdioServerParameters(command=binary, args=args)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert names == TOOLS, names
            c = Calls(session)
            if mode == "read-only":
                await c.fails("write_file", "read-only", path="/x", content="x")
                await c.fails("kv_set", "read-only", key="k", value=1)
                assert "README" in await c.ok("list_dir", path="/")
            else:
                await files(c)
                await kv(c)
                await inspect(c, mode == "overlay")
            try:
                await session.call_tool("no_such_tool", {})
                raise AssertionError("an unknown tool was accepted")
            except AssertionError:
                raise
            except Exception as e:  # the SDK raises the protocol error
                assert "no_such_tool" in str(e), e
    print(json.dumps({"calls": c.calls, "errors": c.errors}))


asyncio.run(main())

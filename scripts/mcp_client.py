"""Drives tidelog's MCP server with the official MCP Python SDK (`mcp` on PyPI).

Usage:
  mcp_client.py stdio <tidelog-binary> <data-dir> <tenant>
  mcp_client.py http <url> <tenant> [<bearer-token>]

Lists the tools and resources, calls every tool (and some with bad arguments), and prints one JSON
object with what it got, for the caller to check against the HTTP API. Exits non-zero when a step
fails in a way the server must not allow (a bad argument that is accepted, a crash, a missing tool).
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

SQL_BY_TYPE = "SELECT event_type, count(*) AS n, max(version) AS v FROM events GROUP BY event_type ORDER BY event_type"
TOOLS = {"append_event", "append_events", "query_events", "get_event", "entity_state", "recent_events", "tenant_stats"}


def structured(result):
    if result.is_error:
        raise SystemExit(f"tool error: {result.content}")
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


async def bad(client, tool, arguments):
    """A call that must fail: as an MCP error (JSON-RPC) or a tool result flagged is_error."""
    try:
        result = await client.call_tool(tool, arguments)
    except MCPError as e:
        return {"kind": "mcp_error", "code": e.code, "message": e.message}
    if result.is_error:
        return {"kind": "tool_error", "message": " ".join(getattr(c, "text", "") for c in result.content)}
    raise SystemExit(f"{tool}({arguments}) was accepted: {result}")


async def session(client, tenant):
    out = {}
    tools = (await client.list_tools()).tools
    out["tools"] = {t.name: t.input_schema for t in tools}
    missing = TOOLS - set(out["tools"])
    if missing:
        raise SystemExit(f"missing tools: {missing}")
    out["instructions"] = client.instructions

    first = structured(await client.call_tool("append_event", {
        "tenant_id": tenant, "entity_id": "agent-1", "event_type": "memory.created",
        "payload": {"topic": "tidelog", "notes": ["a"]}, "timestamp": "2024-01-01T00:00:00Z"}))
    batch = structured(await client.call_tool("append_events", {"events": [
        {"tenant_id": tenant, "entity_id": "agent-1", "event_type": "memory.updated",
         "payload": {"notes": ["a", "b"]}, "expected_version": 1, "timestamp": "2024-01-02T00:00:00Z"},
        {"tenant_id": tenant, "entity_id": "agent-2", "event_type": "task.done", "payload": {"ok": True},
         "metadata": {"by": "python"}, "timestamp": "2024-01-03T00:00:00Z"},
    ]}))
    out["append_event"], out["append_events"] = first, batch
    out["query_events"] = structured(await client.call_tool("query_events", {
        "tenant_id": tenant, "entity_id": "agent-1", "order": "desc", "limit": 10}))
    out["query_prefix"] = structured(await client.call_tool("query_events", {
        "tenant_id": tenant, "event_type_prefix": "memory.", "since": "2024-01-01T12:00:00Z"}))
    out["get_event"] = structured(await client.call_tool("get_event", {"tenant_id": tenant, "event_id": first["event_id"]}))
    out["entity_state"] = structured(await client.call_tool("entity_state", {"tenant_id": tenant, "entity_id": "agent-1"}))
    out["entity_state_as_of"] = structured(await client.call_tool("entity_state", {
        "tenant_id": tenant, "entity_id": "agent-1", "as_of": "2024-01-01T12:00:00Z"}))
    out["recent_events"] = structured(await client.call_tool("recent_events", {"tenant_id": tenant, "limit": 2}))
    out["recent_memory"] = structured(await client.call_tool("recent_events", {"tenant_id": tenant, "event_type_prefix": "memory."}))
    out["tenant_stats"] = structured(await client.call_tool("tenant_stats", {"tenant_id": tenant}))
    has_sql = "sql" in out["tools"]  # a build with the sql feature
    if has_sql:
        out["sql"] = structured(await client.call_tool("sql", {
            "tenant_id": tenant, "query": SQL_BY_TYPE}))

    resources = (await client.list_resources()).resources
    out["resources"] = sorted(str(r.uri) for r in resources)
    schema = (await client.read_resource("tidelog://schema/event")).contents[0].text
    out["schema"] = json.loads(schema)
    types = (await client.read_resource(f"tidelog://tenants/{tenant}/event-types")).contents[0].text
    out["event_types"] = json.loads(types)

    out["errors"] = {
        "missing_entity": await bad(client, "append_event", {"event_type": "t", "payload": {}}),
        "unknown_field": await bad(client, "append_event", {"entity_id": "e", "event_type": "t", "payload": {}, "colour": 1}),
        "bad_tenant": await bad(client, "append_event", {"tenant_id": "no spaces", "entity_id": "e", "event_type": "t", "payload": {}}),
        "version_conflict": await bad(client, "append_event", {
            "tenant_id": tenant, "entity_id": "agent-1", "event_type": "t", "payload": {}, "expected_version": 99}),
        "bad_since": await bad(client, "query_events", {"tenant_id": tenant, "since": "yesterday"}),
        "both_types": await bad(client, "query_events", {"tenant_id": tenant, "event_type": "a", "event_type_prefix": "b"}),
        "bad_uuid": await bad(client, "get_event", {"tenant_id": tenant, "event_id": "nope"}),
        "unknown_event": await bad(client, "get_event", {"tenant_id": tenant, "event_id": "0190f0f0-0000-7000-8000-000000000001"}),
        "no_entity": await bad(client, "entity_state", {"tenant_id": tenant, "entity_id": "nobody"}),
        "zero_limit": await bad(client, "recent_events", {"tenant_id": tenant, "limit": 0}),
        "other_tenant": await bad(client, "tenant_stats", {"tenant_id": "someone-else"}) if "--keyed" in sys.argv else None,
        "unknown_tool": await bad(client, "drop_everything", {}),
        "bad_sql": await bad(client, "sql", {"tenant_id": tenant, "query": "SELEC 1"}) if has_sql else None,
        "write_sql": await bad(client, "sql", {"tenant_id": tenant, "query": "DROP TABLE events"}) if has_sql else None,
        "sql_other_tenant": await bad(client, "sql", {"tenant_id": "someone-else", "query": "SELECT 1"})
        if has_sql and "--keyed" in sys.argv else None,
    }
    # The server still answers after the errors.
    out["after_errors"] = structured(await client.call_tool("tenant_stats", {"tenant_id": tenant}))
    return out


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        binary, data_dir, tenant = sys.argv[2:5]
        params = StdioServerParameters(command=binary, args=["--data-dir", data_dir, "--shards", "2", "mcp"])
        target = params
    else:
        url, tenant = sys.argv[2:4]
        token = sys.argv[4] if len(sys.argv) > 4 and not sys.argv[4].startswith("--") else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        target = streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=30))
    async with Client(target, cache=None) as client:
        out = await session(client, tenant)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())

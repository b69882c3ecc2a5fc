"""Keel as seen by other systems, each protocol on its official SDK:

- `keel.gateway.mcp_server`: `build_mcp_server`, the MCP server (`keel mcp` over stdio; its
  Streamable HTTP app mounts in the HTTP server), needs `keel[mcp]`;
- `keel.gateway.acp_agent`: `serve_acp`, the Agent Client Protocol agent (`keel acp`),
  needs `keel[acp]`.

The SDKs are optional, so this package imports neither: import the module you use.
"""

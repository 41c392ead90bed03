-- Version 5 -> 6: the network policy of `agentfs run`, and what its proxy was asked.
-- fs_run_config: per-session defaults of `agentfs run`: 'network' (host, none or allow) and
--   'allow_domains' (a JSON array of names; '*.example.com' matches its subdomains).
-- fs_net_request: every request the proxy of a session with network=allow was asked to pass,
--   allowed or not: when (ns since the epoch), for which runner, the method (CONNECT for
--   TLS tunnels), the host and port asked for.
CREATE TABLE IF NOT EXISTS fs_run_config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fs_net_request (
  id INTEGER PRIMARY KEY,
  at_ns INTEGER NOT NULL,
  runner_id INTEGER,
  method TEXT NOT NULL,
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  allowed INTEGER NOT NULL
);

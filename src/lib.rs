//! agentfs: run commands on a copy-on-write view of a directory, with every change kept as
//! rows in one SQLite database per session.

pub mod apply;
pub mod diff;
pub mod fsck;
pub mod fuse;
pub mod hook_socket;
pub mod hooks;
pub mod kv;
pub mod mcp;
pub mod mount;
pub mod overlay;
pub mod progress;
pub mod readahead;
pub mod repl;
pub mod report;
pub mod run;
pub mod runners;
pub mod session;
pub mod store;
pub mod timeline;
pub mod tools;
pub mod vfs;

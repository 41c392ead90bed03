-- Version 1 -> 2: what `agentfs run` needs to know about its runners.
-- mnt_ns: the inode of the runner's mount namespace (/proc/PID/ns/mnt). Every process of a
--   runner shares it, so the mount daemon names the runner of each change from the pid of the
--   process that made it, even for processes that left the runner's process tree.
-- pid_start: the runner process's start time (clock ticks after boot, /proc/PID/stat field 22),
--   so that a reused pid is not taken for a live runner.
ALTER TABLE fs_runner ADD COLUMN mnt_ns INTEGER;
ALTER TABLE fs_runner ADD COLUMN pid_start INTEGER;
CREATE INDEX IF NOT EXISTS fs_runner_by_ns ON fs_runner (mnt_ns);

"""The pipeline engine, approval handlers, audit store, sinks and the policy watcher."""

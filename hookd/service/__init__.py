"""The daemon's lifecycle and its surface: startup / run / shutdown, reload, watchdog
(`daemon`), the process around it (`process`), systemd's notify protocol (`sdnotify`),
/healthz, /readyz, /metrics (`health`, `metrics`, `hookview`)."""

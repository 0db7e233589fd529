"""The pipeline demo: reference services, a watcher on every channel, a live dashboard."""

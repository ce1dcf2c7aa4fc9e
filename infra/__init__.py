"""Settings, filesystems, compute clusters and the local service stack: where configuration becomes objects."""

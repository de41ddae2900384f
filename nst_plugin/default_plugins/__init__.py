"""The built-in features, registered through the same hooks as third-party plugins."""

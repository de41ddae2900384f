"""Hosts: applications that run the package's tasks, knowing them only through the plugin API."""

"""The ``ams`` command line."""

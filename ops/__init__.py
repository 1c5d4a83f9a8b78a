"""Tools for operating a deployed stack (the runbooks in docs/operations.md), run from the repository:
``python -m ops.<tool> --help``. They use your AWS credentials, never the stack's."""

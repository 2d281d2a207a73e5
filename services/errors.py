"""Errors a user can fix; front ends show their message without a traceback."""


class UserError(Exception):
    """A problem in input or configuration, with a message that says what to fix."""

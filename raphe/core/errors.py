"""The one exception type that means "bad input the user can fix".

Anything raised as a :class:`RapheError` reaches the command line as one line on stderr and exit
code 2; its message must say what was wrong and, where it helps, what to do.
"""


class RapheError(Exception):
    """Bad input or a refused request, reported to the user as one line."""

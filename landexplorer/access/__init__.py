"""People, groups, roles, tokens, share links and the one policy that every route asks.

Nothing here knows about HTTP: the API turns a session cookie, a bearer token or a share
link into an :class:`~landexplorer.access.model.Actor` and asks
:func:`~landexplorer.access.policy.can` what that actor may do with a layer.
"""

from landexplorer.access.model import ANONYMOUS, OPERATOR, ROLES, VISIBILITIES, Actor
from landexplorer.access.policy import Decision, can, decide

__all__ = ["ANONYMOUS", "OPERATOR", "ROLES", "VISIBILITIES", "Actor", "Decision", "can", "decide"]

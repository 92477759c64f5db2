"""Finding a request's route without asking every router.

FastAPI tries the included routers in order, and asks each router's every route in turn, at a few
microseconds a route: a request for the twentieth router's route paid for some seventy routes
before its own. Here each included router gets a gate first: one regular expression, the union of
its routes' path patterns, and a router none of whose routes takes the path answers "no match" at
once, as its routes would have. A router that has anything but plain API routes, or whose routes
changed since the gate was made, is asked as before.
"""

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.routing import Match
from starlette.types import Scope

Matcher = Callable[[Scope], tuple[Match, Scope]]
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


def gate_routers(app: FastAPI) -> int:
    """Give each of the app's included routers its gate; the number of routers gated."""
    gated = 0
    for included in app.router.routes:
        contexts = getattr(included, "effective_route_contexts", None)
        router = getattr(included, "original_router", None)
        if contexts is None or router is None:
            continue  # a route of the app's own (the docs), asked as it is
        patterns = []
        for context in contexts():
            if not isinstance(context.original_route, APIRoute):
                break
            # The parameters' names go: a union may not name two groups alike.
            patterns.append(f"(?:{_NAMED_GROUP.sub('(?:', context.path_regex.pattern)})")
        else:
            if patterns:
                union = re.compile("|".join(patterns))
                gate = _gated(included.matches, union, router, len(router.routes))
                setattr(included, "matches", gate)  # noqa: B010 (the instance's, not the class's)
                gated += 1
    return gated


def _gated(matches: Matcher, union: re.Pattern[str], router: Any, routes: int) -> Matcher:
    def gated_matches(scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and len(router.routes) == routes
            and union.match(get_route_path(scope)) is None
        ):
            return Match.NONE, {}
        return matches(scope)

    return gated_matches

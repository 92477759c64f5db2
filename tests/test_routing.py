"""The order the routers are included in (busiest first, app/main.py) decides nothing but how soon
a request's route is found: no two routes of one method take the same path."""

import re

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match

from app.config import Settings
from app.main import create_app

# Stands for every path parameter: `[^/]+` takes it, and no literal segment of a route is one.
_PARAMETER = "0b6c2f0e-8a57-4e43-9a7e-4c4f6a1c2d3e"


def _api_routes(app: FastAPI) -> list[APIRoute]:
    routes: list[APIRoute] = []
    for top in app.router.routes:
        included = getattr(top, "original_router", None)
        for route in included.routes if included is not None else [top]:
            if isinstance(route, APIRoute):
                routes.append(route)
    return routes


def _a_path_of(route: APIRoute) -> str:
    return re.sub(r"\{[^}]+\}", _PARAMETER, route.path)


def _taken_by(app: FastAPI, path: str, method: str) -> list[str]:
    """The routes (`METHOD template`) that fully match a request, in the order they are tried."""
    scope = {"type": "http", "path": path, "method": method, "root_path": "", "app": app}
    return [
        f"{method} {route.path}"
        for route in _api_routes(app)
        if method in route.methods and route.matches(scope)[0] is Match.FULL
    ]


def test_no_two_routes_of_a_method_take_one_path():
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    routes = _api_routes(app)
    assert len(routes) > 50  # every router's routes, not just the app's own

    # A literal route's path is its own sample; two templated routes that overlap both take the
    # path with every parameter the same stand-in.
    shared = {
        f"{method} {route.path}": taken
        for route in routes
        for method in sorted(route.methods)
        if (taken := _taken_by(app, _a_path_of(route), method)) != [f"{method} {route.path}"]
    }

    assert shared == {}


def test_the_check_sees_two_routes_that_take_one_path():
    app = create_app(Settings(database_url="sqlite:///:memory:"))

    async def shadow() -> None:
        pass

    app.add_api_route("/v1/enrollments/{anything}", shadow, methods=["GET"])
    path = f"/v1/enrollments/{_PARAMETER}"

    assert _taken_by(app, path, "GET") == [
        "GET /v1/enrollments/{enrollment_id}",
        "GET /v1/enrollments/{anything}",
    ]


def _scope(app: FastAPI, path: str, method: str) -> dict[str, object]:
    return {"type": "http", "path": path, "method": method, "root_path": "", "app": app}


def test_a_routers_gate_answers_as_its_routes_would():
    """Every included router is gated (app.kit.routing), and for any path, a route's or none,
    with any method, the gate's answer is the router's own."""
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    included = [top for top in app.router.routes if hasattr(top, "original_router")]
    assert included and all("matches" in vars(top) for top in included)  # each one gated

    paths = [_a_path_of(route) for route in _api_routes(app)]
    paths += [path + "/" for path in paths] + ["/", "/v1", "/v1/nothing/here", "/healthz/x"]
    for top in included:
        for path in paths:
            for method in ("GET", "POST", "PUT", "DELETE"):
                scope = _scope(app, path, method)
                gated = top.matches(dict(scope))
                asked = type(top).matches(top, dict(scope))
                assert gated == asked, (path, method)


def test_a_route_added_to_a_router_later_is_still_found():
    from app.health.endpoints import router as health_router

    app = create_app(Settings(database_url="sqlite:///:memory:"))
    [top] = [t for t in app.router.routes if getattr(t, "original_router", None) is health_router]

    async def later() -> None:
        pass

    health_router.add_api_route("/later-health", later, methods=["GET"])
    try:
        assert top.matches(_scope(app, "/later-health", "GET"))[0] is Match.FULL
    finally:
        health_router.routes.pop()

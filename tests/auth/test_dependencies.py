"""The caller of an authenticated route, found by one dependency that reads the Authorization
header itself: the same key parsing as FastAPI's HTTPBearer, the same security scheme in the
OpenAPI document, the same 401 and 404, and one dependency level per route."""

import inspect
from typing import get_args

import pytest
from fastapi import Request
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from hypothesis import given
from hypothesis import strategies as st

from app.auth import dependencies
from app.auth.dependencies import _bearer_token
from tests.factories import auth, make_world
from tests.test_errors import assert_problem

_header_values = st.one_of(
    st.none(),
    st.text(),
    st.builds(
        lambda scheme, gap, token: f"{scheme}{gap}{token}",
        st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Bearerx", "", " "]),
        st.sampled_from([" ", "  ", "\t", ""]),
        st.text(alphabet=st.sampled_from("pgk_aZ9 \t"), max_size=12),
    ),
)


@given(_header_values)
def test_a_key_is_read_from_the_header_as_http_bearer_reads_it(value):
    # HTTPBearer (what the dependency replaced) handed on `credentials`, which the dependency
    # stripped and refused if empty or of another scheme.
    scheme, credentials = get_authorization_scheme_param(value)
    expected = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None

    assert _bearer_token(value) == expected


@given(st.text(min_size=1).map(str.strip).filter(bool))
def test_a_bearer_key_is_read_back_whole(key):
    assert _bearer_token(f"Bearer {key}") == key


_ALIASES = [
    dependencies.CurrentPrincipal,
    dependencies.Admin,
    dependencies.Regulator,
    dependencies.InstitutionCaller,
    dependencies.Parent,
    dependencies.AdminOrRegulator,
    dependencies.InstitutionViewer,
]


@pytest.mark.parametrize("alias", _ALIASES)
def test_each_caller_is_one_dependency_level_that_declares_the_bearer_scheme(alias):
    (depends,) = get_args(alias)[1:]
    caller = depends.dependency

    # Only the request: no sub-dependency for FastAPI to resolve on every request.
    assert list(inspect.signature(caller).parameters.values()) == [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    ]
    assert isinstance(caller, SecurityBase)
    assert caller.scheme_name == "HTTPBearer"


# The routes a bank or a probe calls: the only ones without the operator's API key.
_UNAUTHENTICATED = {
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/readyz"),
    ("post", "/v1/banks/{slug}/notify"),
    ("post", "/v1/banks/{slug}/statements"),
}


def test_the_openapi_document_declares_the_bearer_scheme_on_every_authenticated_route(app):
    document = app.openapi()

    assert document["components"]["securitySchemes"] == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: `Bearer pgk_...`.",
        }
    }
    operations = [
        (method, path, operation)
        for path, by_method in document["paths"].items()
        for method, operation in by_method.items()
    ]
    assert len(operations) > 60
    for method, path, operation in operations:
        if (method, path) in _UNAUTHENTICATED:
            assert "security" not in operation, (method, path)
        else:
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer   ", "Token pgk_x", "pgk_x"])
async def test_a_malformed_authorization_header_is_401(client, authorization):
    response = await client.get("/v1/payouts", headers={"Authorization": authorization})

    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_the_scheme_is_case_insensitive_and_the_key_trimmed(engine, client):
    world = await make_world(engine)

    response = await client.get(
        f"/v1/institutions/{world.institution_id}/balance",
        headers={"Authorization": f"bEARER   {world.institution_key}  "},
    )

    assert response.status_code == 200, response.text


async def test_a_known_key_of_another_role_is_404_and_an_unknown_key_401(engine, client):
    world = await make_world(engine)

    # An institution's key on the operator's route: known, so refused as out of scope.
    refused = await client.get("/v1/api-keys", headers=auth(world.institution_key))
    unknown = await client.get("/v1/api-keys", headers=auth("pgk_unknown"))

    assert_problem(refused, 404, "not_found")
    assert refused.json()["detail"] == "nothing here for a institution key"
    assert_problem(unknown, 401, "unauthorized")

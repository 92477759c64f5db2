from app.models.api_key import Role
from tests.factories import auth, make_course, make_key, make_world


async def test_factories_make_a_usable_world(engine, client):
    world = await make_world(engine, max_prepaid_lessons=40)
    course = await make_course(engine, world.institution_id)
    parent = await make_key(engine, Role.parent, enrollment_id=course.id)
    assert world.institution_key.startswith("pgk_") and parent != world.institution_key
    assert auth(world.institution_key)["Authorization"].startswith("Bearer pgk_")
    assert (await client.get("/healthz")).status_code == 200

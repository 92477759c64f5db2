"""/docs and /redoc work without internet: every asset they load is served by the app itself."""

import re

import pytest

ASSET = re.compile(r'(?:src|href|spec-url)="([^"]+)"|url: \'([^\']+)\'')


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_load_only_local_assets_and_each_answers(client, page):
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text

    assert "://" not in html  # no CDN, no other host
    assets = {next(group for group in match.groups() if group) for match in ASSET.finditer(html)}
    assert "/openapi.json" in assets
    assert any(asset.endswith(".js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        loaded = await client.get(asset)
        assert loaded.status_code == 200, asset
        assert loaded.content, asset


async def test_swagger_ui_sends_the_document_to_no_online_validator(client):
    html = (await client.get("/docs")).text
    assert '"validatorUrl": "none"' in html

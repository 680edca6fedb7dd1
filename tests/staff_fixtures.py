"""The `client_request` fixture, loaded by test modules with `pytest_plugins = ["tests.staff_fixtures"]`."""

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.staff_helpers import ClientRequest


@pytest.fixture
def client_request(app: Flask) -> Iterator[ClientRequest]:
    """Console requests as a member of staff: `client_request.sign_in("manager")`, then `.get(...)` and `.post(...)`."""
    yield ClientRequest(app, app.test_client())

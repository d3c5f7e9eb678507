"""/api/v1/openapi.json is a valid OpenAPI 3 document that describes the endpoint."""

import pytest
from openapi_spec_validator import validate


def test_it_serves_a_valid_openapi_document(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    operation = document["paths"]["/api/v1/readings"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "408", "413", "415", "422", "429", "503"}


@pytest.mark.parametrize(
    "field",
    [
        "meter",
        "manufacturer",
        "meter_installation_id",
        "timestamp",
        "value",
        "unit",
        "meter_type",
        "battery_level_pct",
        "rssi_dbm",
        "error_flags",
    ],
)
def test_it_documents_every_field_the_validator_accepts(client, field):
    from gateways.payload import KNOWN_FIELDS

    properties = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["Reading"]["properties"]
    assert field in properties and field in KNOWN_FIELDS
    assert set(properties) == KNOWN_FIELDS


def test_it_describes_the_frames_endpoint(client):
    from gateways.frames import KNOWN_FIELDS

    document = client.get("/api/v1/openapi.json").json()
    validate(document)
    operation = document["paths"]["/api/v1/frames"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "408", "413", "415", "422", "429", "503"}
    assert {parameter["name"] for parameter in operation["parameters"]} == {"partial", "Content-Encoding"}
    assert set(document["components"]["schemas"]["Frame"]["properties"]) == KNOWN_FIELDS


def test_it_states_the_gateway_contract(client):
    description = client.get("/api/v1/openapi.json").json()["info"]["description"]
    for promise in (
        "send it again, unchanged",
        "after every reconnection",
        "`message_id`",
        "correlation data",
        "200 and the other 4xx answers are final",
        "after 429 wait `Retry-After`",
        "rate limit counts HTTP requests and MQTT messages together",
    ):
        assert promise in description
